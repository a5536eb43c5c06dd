package reader

import (
	"fmt"
	"strconv"
	"strings"
)

// Reader is a reader's state as PC/SC reports it.
type Reader struct {
	// Name is the reader's PC/SC name.
	Name string
	// CardPresent reports a card in the reader (SCARD_STATE_PRESENT and not
	// SCARD_STATE_MUTE).
	CardPresent bool
	// ATR is the card's answer to reset, when CardPresent.
	ATR []byte
	// Protocols are the protocols the ATR offers (see ATRProtocols); the
	// protocol in use is Card.Protocol once connected.
	Protocols Protocol
	// Mute reports a card present that did not answer reset.
	Mute bool
	// InUse and Exclusive report other connections to the card (shared,
	// exclusive).
	InUse, Exclusive bool
	// Unavailable reports a reader PC/SC cannot use right now.
	Unavailable bool
}

// Selector chooses a reader. Build one with Exact, Containing, Index,
// FirstWithCard, or ParseSelector. The zero value is FirstWithCard.
type Selector struct {
	kind  selKind
	text  string
	index int
}

type selKind int

const (
	selFirstWithCard selKind = iota
	selExact
	selContaining
	selIndex
	selAuto
)

// Exact selects the reader named name.
func Exact(name string) Selector { return Selector{kind: selExact, text: name} }

// Containing selects the one reader whose name contains s (ignoring case);
// more than one match is an *AmbiguousError.
func Containing(s string) Selector { return Selector{kind: selContaining, text: s} }

// Index selects the i-th reader (from 0) in PC/SC's order.
func Index(i int) Selector { return Selector{kind: selIndex, index: i} }

// FirstWithCard selects the first reader that holds a card.
func FirstWithCard() Selector { return Selector{kind: selFirstWithCard} }

// ParseSelector turns a user's reader argument into a Selector: "" is
// FirstWithCard, a decimal number is Index, and any other text is the reader
// with exactly that name if there is one, else the one reader whose name
// contains it.
func ParseSelector(s string) Selector {
	if s == "" {
		return FirstWithCard()
	}
	if i, err := strconv.Atoi(s); err == nil && i >= 0 {
		return Index(i)
	}
	return Selector{kind: selAuto, text: s}
}

// String describes the selection as error messages name it.
func (s Selector) String() string {
	switch s.kind {
	case selExact:
		return fmt.Sprintf("reader %q", s.text)
	case selContaining:
		return fmt.Sprintf("a reader whose name contains %q", s.text)
	case selIndex:
		return fmt.Sprintf("reader #%d", s.index)
	case selAuto:
		return fmt.Sprintf("reader %q (a name, or part of one)", s.text)
	}
	return "a reader with a card"
}

// Choose picks the reader s selects from readers (as List returns them). A
// selection that matches nothing is a *NotFoundError, one that matches
// several names an *AmbiguousError.
func Choose(readers []Reader, s Selector) (Reader, error) {
	notFound := func() error {
		names := make([]string, len(readers))
		for i, r := range readers {
			names[i] = r.Name
		}
		return &NotFoundError{Wanted: s.String(), Present: names}
	}
	switch s.kind {
	case selIndex:
		if s.index < 0 || s.index >= len(readers) {
			return Reader{}, notFound()
		}
		return readers[s.index], nil
	case selFirstWithCard:
		for _, r := range readers {
			if r.CardPresent {
				return r, nil
			}
		}
		return Reader{}, notFound()
	case selExact, selAuto:
		for _, r := range readers {
			if r.Name == s.text {
				return r, nil
			}
		}
		if s.kind == selExact {
			return Reader{}, notFound()
		}
	}
	var matches []Reader
	for _, r := range readers {
		if strings.Contains(strings.ToLower(r.Name), strings.ToLower(s.text)) {
			matches = append(matches, r)
		}
	}
	switch len(matches) {
	case 0:
		return Reader{}, notFound()
	case 1:
		return matches[0], nil
	}
	names := make([]string, len(matches))
	for i, r := range matches {
		names[i] = r.Name
	}
	return Reader{}, &AmbiguousError{Query: s.text, Matches: names}
}
