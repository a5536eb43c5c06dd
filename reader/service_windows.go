package reader

// noServiceHint ends ErrNoService's text: Windows starts its Smart Card
// service when a reader is attached and stops it after the last one leaves.
const noServiceHint = "is a smart card reader attached? (Windows runs its Smart Card service only while one is)"
