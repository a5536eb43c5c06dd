package tlsconfig

import (
	"errors"
	"testing"
)

// One of a certificate and its key without the other is named as such,
// not as a failure to open "".
func TestIncompleteKeyPair(t *testing.T) {
	if _, err := Client("", "client-cert.pem", "", ""); !errors.Is(err, ErrIncompleteKeyPair) {
		t.Errorf("Client with a certificate only: %v", err)
	}
	if _, err := Client("", "", "client-key.pem", ""); !errors.Is(err, ErrIncompleteKeyPair) {
		t.Errorf("Client with a key only: %v", err)
	}
	if _, err := Server("server-cert.pem", "", ""); !errors.Is(err, ErrIncompleteKeyPair) {
		t.Errorf("Server with a certificate only: %v", err)
	}
	if _, err := Client("", "", "", ""); err != nil {
		t.Errorf("Client without a client certificate: %v", err)
	}
}
