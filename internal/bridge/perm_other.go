//go:build !unix

package bridge

// permissionHint: only unix systems have socket permissions to explain.
func permissionHint(Target, error) string { return "" }
