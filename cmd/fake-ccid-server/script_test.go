package main

import (
	"testing"

	"github.com/vscardkit/vscardkit/internal/scripttest"
)

// TestScripts runs testdata/script/*.txtar: what the command prints and
// how it exits, case by case, through the built binaries (see package
// scripttest for the commands a script has).
func TestScripts(t *testing.T) { scripttest.Run(t, "testdata/script") }
