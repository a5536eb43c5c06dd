package reader

import (
	"context"
	"errors"
)

// List returns the readers the PC/SC service knows, in its order, with
// their card state. No readers is an empty list, not an error; no service is
// an error matching ErrNoService.
func List(ctx context.Context) ([]Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc, err := newStatusContext()
	if err != nil {
		return nil, err
	}
	defer sc.release()
	return listWith(sc, 3)
}

// listWith lists the readers and their states on an established context,
// starting over (at most tries times) when a reader leaves meanwhile.
func listWith(sc statusContext, tries int) ([]Reader, error) {
	names, err := sc.listReaders()
	if err != nil {
		return nil, err
	}
	out := make([]Reader, 0, len(names))
	for start := 0; start < len(names); start += maxStatusReaders {
		end := min(start+maxStatusReaders, len(names))
		states := make([]readerState, 0, end-start)
		for _, n := range names[start:end] {
			states = append(states, readerState{name: n, current: stateUnaware})
		}
		if err := sc.getStatusChange(states, 0); err != nil {
			var pe *PCSCError
			if errors.As(err, &pe) && pe.Code == codeUnknownReader && tries > 1 {
				// A reader left between the two calls: list again.
				return listWith(sc, tries-1)
			}
			return nil, err
		}
		for _, st := range states {
			out = append(out, readerFromState(st))
		}
	}
	return out, nil
}

// Select lists the readers and chooses one with s (see Choose).
func Select(ctx context.Context, s Selector) (Reader, error) {
	readers, err := List(ctx)
	if err != nil {
		return Reader{}, err
	}
	return Choose(readers, s)
}
