// Package secret is internal to leaky: its users cannot name its types.
package secret

type T struct{ N int }

type Slot byte

type Store interface{ Get(Slot) T }

type Number interface{ ~int | ~int64 }
