// Package apicheck finds the places where a package's exported API names a
// type that its users cannot name: a type from an internal/ package. A
// user of vscardkit can call certsrc.Open, but cannot import
// vscardkit/internal/piv, so an exported certsrc method that takes a
// piv.Slot is usable only by chance (untyped constants) or not at all.
//
// The check reads the compiler's export data of the built packages (`go
// list -export`, then go/importer and go/types), so it sees the API of the
// build it runs in (this GOOS and GOARCH, cgo or not) exactly as a user's
// compiler does, without golang.org/x/tools.
//
// References:
//   - The Go spec, Exported identifiers; cmd/go, Internal Directories
//   - go/types: https://pkg.go.dev/go/types
package apicheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Finding is one place in an exported API that names an internal type.
type Finding struct {
	// Where is the exported identifier and the position in it, e.g.
	// "certsrc.(*Store).Certificate: parameter 1" or "certsrc.Config.Slots:
	// field type".
	Where string
	// Internal is the internal type named there, package path and name.
	Internal string
}

// String formats the finding as "Where names Internal".
func (f Finding) String() string { return f.Where + " names " + f.Internal }

// Options configures Check. The zero value checks the packages as the go
// command builds them here.
type Options struct {
	// Dir is where `go list` runs (a directory of the module); "" means
	// the current directory.
	Dir string
	// Env is added to the go command's environment (e.g. GOOS=windows,
	// CGO_ENABLED=0).
	Env []string
}

// Check loads the packages (import paths or patterns the go command
// understands) and returns, sorted, every place their exported API names a
// type from a package that their users cannot import because of an
// "internal" path element (see Hidden). It fails when a package does not
// build.
func Check(opts Options, pkgs ...string) ([]Finding, error) {
	exports, roots, err := listExports(opts, pkgs)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("apicheck: no export data for %s", path)
		}
		return os.Open(f)
	})
	var out []Finding
	for _, path := range roots {
		pkg, err := imp.Import(path)
		if err != nil {
			return nil, fmt.Errorf("apicheck: importing %s: %w", path, err)
		}
		out = append(out, checkPackage(pkg)...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Where != out[j].Where {
			return out[i].Where < out[j].Where
		}
		return out[i].Internal < out[j].Internal
	})
	return out, nil
}

// listed is the part of `go list -json` output Check reads.
type listed struct {
	ImportPath string
	Export     string
	DepOnly    bool
	Error      *struct{ Err string }
}

// listExports runs go list -export over pkgs and their dependencies and
// returns the export data file of each package and the import paths of
// the packages asked for.
func listExports(opts Options, pkgs []string) (map[string]string, []string, error) {
	args := append([]string{"list", "-e", "-export", "-deps", "-json=ImportPath,Export,DepOnly,Error"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("apicheck: go list: %w\n%s", err, stderr.String())
	}
	exports := map[string]string{}
	var roots []string
	var errs []error
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			return nil, nil, fmt.Errorf("apicheck: reading go list output: %w", err)
		}
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("%s: %s", p.ImportPath, strings.TrimSpace(p.Error.Err)))
			continue
		}
		exports[p.ImportPath] = p.Export
		if !p.DepOnly {
			roots = append(roots, p.ImportPath)
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("apicheck: packages do not build (%s): %w\n%s", strings.Join(opts.Env, " "), errors.Join(errs...), stderr.String())
	}
	return exports, roots, nil
}

// Hidden reports whether the users of package from may be unable to
// import package path because of an internal element: Go allows an import
// of a path containing "internal" only from the tree rooted at that
// element's parent, so path is hidden unless every importer of from (the
// tree its own last internal element allows, or everyone) lies in the tree
// path's last internal element allows.
func Hidden(from, path string) bool {
	rp, hasInternal := internalRoot(path)
	if !hasInternal {
		return false
	}
	rf, fromInternal := internalRoot(from)
	if !fromInternal {
		return true // from is importable by anyone, path is not
	}
	return !(rf == rp || rp == "" || strings.HasPrefix(rf, rp+"/"))
}

// internalRoot returns the parent of the last "internal" element of path
// (its importers must lie under it) and whether there is one.
func internalRoot(path string) (string, bool) {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if elems[i] == "internal" {
			return strings.Join(elems[:i], "/"), true
		}
	}
	return "", false
}

// checker walks one package's exported API.
type checker struct {
	pkg   *types.Package
	out   []Finding
	where string
	seen  map[types.Type]bool // unexported named types of pkg being walked (against cycles)
}

func checkPackage(pkg *types.Package) []Finding {
	c := &checker{pkg: pkg, seen: map[types.Type]bool{}}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		qual := pkg.Name() + "." + name
		switch o := obj.(type) {
		case *types.Func:
			c.walk(qual, o.Type())
		case *types.Var:
			c.at(qual+": type", o.Type())
		case *types.Const:
			c.at(qual+": type", o.Type())
		case *types.TypeName:
			c.typeName(qual, o)
		}
	}
	return c.out
}

// typeName checks an exported type: what it is defined as (or aliases),
// its type parameters' constraints and its exported methods.
func (c *checker) typeName(qual string, o *types.TypeName) {
	if a, ok := o.Type().(*types.Alias); ok {
		c.at(qual+": aliased type", a.Rhs())
		return
	}
	named, ok := o.Type().(*types.Named)
	if !ok {
		return
	}
	for i := range named.TypeParams().Len() {
		c.at(fmt.Sprintf("%s: type parameter %d constraint", qual, i+1), named.TypeParams().At(i).Constraint())
	}
	c.walk(qual, named.Underlying())
	c.methods(qual, named)
}

// methods checks the exported methods of *named: those declared on it,
// with value or pointer receivers, and those promoted from embedded
// fields. An interface's methods are its underlying type's, checked there.
func (c *checker) methods(qual string, named *types.Named) {
	if types.IsInterface(named) {
		return
	}
	ms := types.NewMethodSet(types.NewPointer(named))
	for i := range ms.Len() {
		m := ms.At(i).Obj().(*types.Func)
		if !m.Exported() {
			continue
		}
		recv := qual
		if sig := m.Type().(*types.Signature); sig.Recv() != nil {
			if _, ptr := sig.Recv().Type().(*types.Pointer); ptr {
				pkgName, typ, ok := strings.Cut(qual, ".")
				if ok && !strings.Contains(typ, " ") {
					recv = pkgName + ".(*" + typ + ")"
				}
			}
		}
		c.walk(recv+"."+m.Name(), m.Type())
	}
}

// at checks the type t found at where.
func (c *checker) at(where string, t types.Type) {
	saved := c.where
	c.where = where
	c.visit(t)
	c.where = saved
}

// walk checks a type found as the definition of qual: a signature's
// parameters and results, a struct's exported fields, an interface's
// exported methods, anything else as a whole.
func (c *checker) walk(qual string, t types.Type) {
	switch t := t.(type) {
	case *types.Signature:
		c.signature(qual, t)
	case *types.Struct:
		for i := range t.NumFields() {
			f := t.Field(i)
			switch {
			case f.Exported() && f.Embedded():
				c.at(fmt.Sprintf("%s.%s: embedded field type", qual, f.Name()), f.Type())
			case f.Exported():
				c.at(fmt.Sprintf("%s.%s: field type", qual, f.Name()), f.Type())
			case f.Embedded():
				// Its exported fields and methods are promoted.
				c.at(fmt.Sprintf("%s: embedded %s", qual, f.Name()), f.Type())
			}
		}
	case *types.Interface:
		for i := range t.NumExplicitMethods() {
			m := t.ExplicitMethod(i)
			if m.Exported() {
				c.signature(qual+"."+m.Name(), m.Type().(*types.Signature))
			}
		}
		for i := range t.NumEmbeddeds() {
			c.at(fmt.Sprintf("%s: embedded interface %d", qual, i+1), t.EmbeddedType(i))
		}
	default:
		c.at(qual+": underlying type", t)
	}
}

func (c *checker) signature(qual string, sig *types.Signature) {
	for i := range sig.TypeParams().Len() {
		c.at(fmt.Sprintf("%s: type parameter %d constraint", qual, i+1), sig.TypeParams().At(i).Constraint())
	}
	for i := range sig.Params().Len() {
		c.at(fmt.Sprintf("%s: parameter %d", qual, i+1), sig.Params().At(i).Type())
	}
	for i := range sig.Results().Len() {
		c.at(fmt.Sprintf("%s: result %d", qual, i+1), sig.Results().At(i).Type())
	}
}

// visit reports every internal named type t mentions. A named type of
// another package is a name a user writes: it is reported if internal and
// otherwise not entered (its own package is checked on its own). An
// unexported named type of the package under check is entered (once on
// each path, against cycles): its exported fields and methods are
// reachable through the value a user gets.
func (c *checker) visit(t types.Type) {
	switch t := t.(type) {
	case *types.Alias:
		o := t.Obj()
		if o.Pkg() != nil && Hidden(c.pkg.Path(), o.Pkg().Path()) {
			c.report(o)
			return
		}
		if o.Pkg() == c.pkg && o.Exported() {
			// An exported alias of this package is checked where it is
			// declared: an alias of an internal type is one finding there
			// (a new name for it, whose methods and documentation stay in
			// the internal package), not one more at every use.
			return
		}
		c.visit(t.Rhs())
	case *types.Named:
		o := t.Obj()
		if o.Pkg() != nil && Hidden(c.pkg.Path(), o.Pkg().Path()) {
			c.report(o)
		}
		for i := range t.TypeArgs().Len() {
			c.visit(t.TypeArgs().At(i))
		}
		if o.Pkg() == c.pkg && !o.Exported() && !c.seen[t] {
			c.seen[t] = true
			qual := c.where + " (unexported " + o.Name() + ")"
			saved := c.where
			c.where = qual
			c.walk(qual, t.Underlying())
			c.methods(qual, t)
			c.where = saved
			delete(c.seen, t)
		}
	case *types.Pointer:
		c.visit(t.Elem())
	case *types.Slice:
		c.visit(t.Elem())
	case *types.Array:
		c.visit(t.Elem())
	case *types.Map:
		c.visit(t.Key())
		c.visit(t.Elem())
	case *types.Chan:
		c.visit(t.Elem())
	case *types.Signature:
		saved := c.where
		c.signature(c.where, t)
		c.where = saved
	case *types.Struct, *types.Interface:
		saved := c.where
		c.walk(c.where, t)
		c.where = saved
	case *types.Union:
		for i := range t.Len() {
			c.visit(t.Term(i).Type())
		}
	case *types.TypeParam:
		// Its constraint is checked where the parameter is declared.
	}
}

func (c *checker) report(o *types.TypeName) {
	c.out = append(c.out, Finding{Where: c.where, Internal: o.Pkg().Path() + "." + o.Name()})
}
