// Package leaky is apicheck's test input: every exported identifier whose
// name starts with Leak names a type from leaky/internal/secret somewhere
// in its API; those starting with Clean do not.
package leaky

import "github.com/vscardkit/vscardkit/internal/apicheck/testdata/leaky/internal/secret"

func LeakParam(secret.Slot) {}

func LeakResult() (int, *secret.T) { return 0, nil }

func LeakFuncParam(func(map[string][]secret.T)) {}

func LeakGeneric[N secret.Number](n N) N { return n }

var LeakVar []secret.Slot

const LeakConst secret.Slot = 1

type LeakAlias = secret.T

func LeakAliasUse(LeakAlias) {} // reported once, at LeakAlias

type unexportedAlias = secret.Slot

func LeakUnexportedAlias() unexportedAlias { return 0 }

type LeakDefined secret.T // its field N is promoted: fine; the definition itself is not a name

type LeakStruct struct {
	Field  chan secret.T
	hidden secret.T // unexported: not API
}

type LeakEmbed struct {
	secret.Store // an exported embedded field
}

type LeakInterface interface {
	Get() secret.Slot
}

type LeakMethod struct{}

func (*LeakMethod) Slot() secret.Slot { return 0 }

func (LeakMethod) hidden() secret.Slot { return 0 } // unexported: not API

type helper struct{}

func (helper) Promoted() secret.T { return secret.T{} }

type LeakPromoted struct{ helper }

func LeakUnexportedResult() helper { return helper{} }

type CleanStruct struct {
	A int
	b secret.T
}

func CleanFunc(x int) error { return nil }

func cleanUnexported(secret.T) {}

type CleanDefined secret.Slot // a defined type: its underlying byte is what users see

type node struct {
	Next *node // a cycle: walked once per path
	V    secret.T
}

func LeakCycle() *node { return nil }
