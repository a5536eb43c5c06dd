//go:build !unix

package main

import "github.com/vscardkit/vscardkit/internal/bridge"

// permissionHint: only unix systems have socket permissions to explain.
func permissionHint(bridge.Target, error) string { return "" }
