package reader

// noServiceHint ends ErrNoService's text: macOS starts its PC/SC service
// (com.apple.ctkpcscd) on demand.
const noServiceHint = "is a smart card reader attached? (macOS starts its PC/SC service on demand)"
