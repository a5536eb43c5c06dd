package main

import (
	"context"
	"io"
)

func listReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return nil
}
