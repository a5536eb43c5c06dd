package softstore

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// maxPEMFile bounds what Load reads from one file.
const maxPEMFile = 1 << 20

// Load returns a store holding the key pairs in dir: for each slot, the files
// <slot>.crt (one PEM CERTIFICATE) and <slot>.key (one unencrypted PEM
// private key, PKCS #8, PKCS #1 or SEC 1), slot being 9a, 9c, 9d or 9e.
func Load(dir string, opts Options) (*Store, error) {
	slots := map[piv.Slot]KeyPair{}
	for _, slot := range piv.Slots {
		base := filepath.Join(dir, strings.ToLower(slot.String()))
		certPEM, certErr := readFile(base + ".crt")
		keyPEM, keyErr := readFile(base + ".key")
		certMissing, keyMissing := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
		switch {
		case certMissing && keyMissing:
			continue
		case certErr != nil && !certMissing:
			return nil, certErr
		case keyErr != nil && !keyMissing:
			return nil, keyErr
		case certMissing:
			return nil, fmt.Errorf("%w: %s.key has no %s.crt beside it", ErrBadKeyPair, base, base)
		case keyMissing:
			return nil, fmt.Errorf("%w: %s.crt has no %s.key beside it", ErrBadKeyPair, base, base)
		}
		der, err := parseCertPEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.crt: %w", ErrBadKeyPair, base, err)
		}
		key, err := parseKeyPEM(keyPEM)
		clear(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.key: %w", ErrBadKeyPair, base, err)
		}
		slots[slot] = KeyPair{Certificate: der, Key: key}
	}
	if len(slots) == 0 {
		return nil, fmt.Errorf("softstore: no key pairs in %s (want 9a.crt and 9a.key, and so on for 9c, 9d, 9e)", dir)
	}
	return New(slots, opts)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("softstore: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("softstore: %w", err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("softstore: %s: longer than %d bytes, too long for a PEM file", path, maxPEMFile)
	}
	return b, nil
}

func parseCertPEM(b []byte) ([]byte, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return block.Bytes, nil
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	defer clear(block.Bytes)
	if _, encrypted := block.Headers["DEK-Info"]; encrypted {
		return nil, errors.New("encrypted PEM keys are not supported")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T is not supported", key)
	}
	return s, nil
}
