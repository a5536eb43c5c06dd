//go:build !windows && !darwin

package reader

// noServiceHint ends ErrNoService's text.
const noServiceHint = "is pcscd running?"
