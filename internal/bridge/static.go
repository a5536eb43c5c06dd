package bridge

import (
	"context"
	"sync"
)

// Static is a Source whose reader and card its owner sets: an emulated card
// that is always there, or a test card inserted and removed at will.
type Static struct {
	mu     sync.Mutex
	state  State
	notify chan struct{}
}

// NewStatic returns a source presenting reader with card (whose answer to
// reset is atr) inserted; a nil card presents the reader empty.
func NewStatic(reader string, atr []byte, card Card) *Static {
	s := &Static{notify: make(chan struct{}, 1)}
	s.state = State{Reader: reader}
	if card != nil {
		s.state.ATR, s.state.Card, s.state.Generation = atr, card, 1
	}
	return s
}

// Insert puts card (with atr) in the reader, replacing any card there.
func (s *Static) Insert(atr []byte, card Card) {
	s.set(func(st *State) { st.ATR, st.Card = atr, card; st.Generation++ })
}

// Remove takes the card out.
func (s *Static) Remove() {
	s.set(func(st *State) { st.ATR, st.Card = nil, nil; st.Generation++ })
}

// SetReader renames the reader; "" unplugs it (and its card).
func (s *Static) SetReader(name string) {
	s.set(func(st *State) {
		st.Reader = name
		if name == "" {
			st.ATR, st.Card = nil, nil
			st.Generation++
		}
	})
}

func (s *Static) set(f func(*State)) {
	s.mu.Lock()
	f(&s.state)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Run reports the state now and after every change until ctx ends.
func (s *Static) Run(ctx context.Context, update func(State)) error {
	for {
		s.mu.Lock()
		st := s.state
		s.mu.Unlock()
		update(st)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.notify:
		}
	}
}
