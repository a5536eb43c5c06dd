package certsrc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ModuleFile returns the file of the PKCS#11 module u names:
//
//   - module-path naming a file: that file;
//   - module-path naming a directory: the module-name module in it;
//   - module-name alone: on Linux, macOS and the BSDs, the module p11-kit
//     knows by that name (the "module:" line of NAME.module in
//     ~/.config/pkcs11/modules, /etc/pkcs11/modules,
//     /usr/share/p11-kit/modules and their /usr/local and Homebrew
//     counterparts, a relative path being relative to the system's pkcs11
//     module directory), else the module of that name in the system's
//     module directories; on Windows, NAME.dll in the system directory
//     (%SystemRoot%\System32, where OpenSC's installer puts
//     opensc-pkcs11.dll), OpenSC's own directory
//     (%ProgramFiles%\OpenSC Project\OpenSC\pkcs11) or a directory of
//     %PATH%; p11-kit's configuration is not read there.
//
// The file of a module NAME is libNAME.so or NAME.so on Linux and the BSDs;
// libNAME.dylib, NAME.dylib, libNAME.so or NAME.so on macOS (modules built
// with libtool, softhsm2's among them, are .so there too); NAME.dll or
// libNAME.dll on Windows; or NAME itself. Names match case-insensitively,
// as RFC 7512 asks.
//
// A URI with neither attribute names no module: the error wraps
// ErrNoModule.
func (u *URI) ModuleFile() (string, error) {
	home, _ := os.UserHomeDir()
	return u.moduleFile(placesFor(runtime.GOOS, runtime.GOARCH, os.Getenv, home))
}

// modulePlaces is where ModuleFile looks on one system.
type modulePlaces struct {
	goos       string
	configDirs []string // p11-kit's module configuration directories, user first
	libDirs    []string // where modules are installed
}

// placesFor returns the places of goos (runtime.GOOS values). It reads
// nothing but getenv and home, so that every system's rules can be tested
// on any.
func placesFor(goos, goarch string, getenv func(string) string, home string) modulePlaces {
	p := modulePlaces{goos: goos}
	if goos == "windows" {
		if root := getenv("SystemRoot"); root != "" {
			p.libDirs = append(p.libDirs, strings.TrimRight(root, `\/`)+`\System32`)
		}
		if pf := getenv("ProgramFiles"); pf != "" {
			p.libDirs = append(p.libDirs, strings.TrimRight(pf, `\/`)+`\OpenSC Project\OpenSC\pkcs11`)
		}
		for _, d := range strings.Split(getenv("PATH"), ";") {
			if d = strings.Trim(d, `"`); d != "" {
				p.libDirs = append(p.libDirs, d)
			}
		}
		return p
	}
	// p11-kit's configuration: the user's, then the system's (p11-kit's
	// config documentation; /usr/local and Homebrew prefixes where
	// p11-kit is not part of the system).
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		p.configDirs = append(p.configDirs, d+"/pkcs11/modules")
	} else if home != "" {
		p.configDirs = append(p.configDirs, home+"/.config/pkcs11/modules")
	}
	switch goos {
	case "linux":
		p.configDirs = append(p.configDirs, "/etc/pkcs11/modules", "/usr/share/p11-kit/modules")
		// p11-kit's p11_module_path on Debian and Fedora.
		if t := debianTriplet(goarch); t != "" {
			p.libDirs = append(p.libDirs, "/usr/lib/"+t+"/pkcs11")
		}
		p.libDirs = append(p.libDirs, "/usr/lib64/pkcs11", "/usr/lib/pkcs11")
	case "darwin":
		p.configDirs = append(p.configDirs, "/opt/homebrew/etc/pkcs11/modules", "/usr/local/etc/pkcs11/modules",
			"/etc/pkcs11/modules", "/opt/homebrew/share/p11-kit/modules", "/usr/local/share/p11-kit/modules")
		p.libDirs = append(p.libDirs, "/opt/homebrew/lib/pkcs11", "/usr/local/lib/pkcs11",
			"/Library/OpenSC/lib", "/opt/homebrew/lib", "/usr/local/lib")
	default: // the BSDs and other Unix systems, with ports under /usr/local
		p.configDirs = append(p.configDirs, "/usr/local/etc/pkcs11/modules", "/etc/pkcs11/modules",
			"/usr/local/share/p11-kit/modules", "/usr/share/p11-kit/modules")
		p.libDirs = append(p.libDirs, "/usr/local/lib/pkcs11", "/usr/lib/pkcs11")
	}
	return p
}

func debianTriplet(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64-linux-gnu"
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	case "arm":
		return "arm-linux-gnueabihf"
	case "ppc64le":
		return "powerpc64le-linux-gnu"
	case "s390x":
		return "s390x-linux-gnu"
	case "riscv64":
		return "riscv64-linux-gnu"
	}
	return ""
}

// libNames are the file names a module called name may have on goos, most
// likely first.
func libNames(goos, name string) []string {
	switch goos {
	case "windows":
		return []string{name + ".dll", "lib" + name + ".dll", name}
	case "darwin":
		return []string{"lib" + name + ".dylib", name + ".dylib", "lib" + name + ".so", name + ".so", name}
	}
	return []string{"lib" + name + ".so", name + ".so", name}
}

// exampleModule is a module-path for messages.
func exampleModule(goos string) string {
	switch goos {
	case "windows":
		return `C:\path\to\module.dll`
	case "darwin":
		return "/path/to/module.dylib"
	}
	return "/path/to/module.so"
}

func (u *URI) moduleFile(p modulePlaces) (string, error) {
	if u.ModulePath != "" {
		fi, err := os.Stat(u.ModulePath)
		if err != nil {
			return "", fmt.Errorf("%w: module-path: %v", ErrNoModule, err)
		}
		if !fi.IsDir() {
			return u.ModulePath, nil
		}
		if u.ModuleName == "" {
			return "", fmt.Errorf("%w: module-path %s is a directory and the URI has no module-name", ErrNoModule, u.ModulePath)
		}
		if f := findLib([]string{u.ModulePath}, libNames(p.goos, u.ModuleName)); f != "" {
			return f, nil
		}
		return "", fmt.Errorf("%w: no module %q in %s", ErrNoModule, u.ModuleName, u.ModulePath)
	}
	if u.ModuleName == "" {
		for _, a := range u.QueryVendor {
			if n := strings.ReplaceAll(strings.ToLower(a.Name), "_", "-"); n == "module-path" || n == "module-name" || n == "modulepath" || n == "modulename" {
				return "", fmt.Errorf("%w: the URI has %q, which RFC 7512 spells %s", ErrNoModule, a.Name, strings.Replace(strings.Replace(n, "modulepath", "module-path", 1), "modulename", "module-name", 1))
			}
		}
		return "", fmt.Errorf("%w: the URI names no module; add ?module-path=%s or ?module-name=NAME", ErrNoModule, exampleModule(p.goos))
	}
	if strings.ContainsAny(u.ModuleName, "/\\\x00") {
		return "", fmt.Errorf("%w: module-name %q is a path; use module-path", ErrNoModule, u.ModuleName)
	}
	for _, d := range p.configDirs {
		f, err := p11kitModule(d, u.ModuleName)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoModule, err)
		}
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			if g := findFile(p.libDirs, f); g != "" {
				return g, nil
			}
			return "", fmt.Errorf("%w: p11-kit module %q is %s, which is in none of %s", ErrNoModule, u.ModuleName, f, strings.Join(p.libDirs, ", "))
		}
		return f, nil
	}
	if f := findLib(p.libDirs, libNames(p.goos, u.ModuleName)); f != "" {
		return f, nil
	}
	where := "in " + strings.Join(p.libDirs, ", ")
	if len(p.configDirs) > 0 {
		where = "in p11-kit's configuration and " + where
	}
	return "", fmt.Errorf("%w: no module named %q (looked %s)", ErrNoModule, u.ModuleName, where)
}

// p11kitModule returns the "module:" value of dir/NAME.module, the name
// matched case-insensitively, or "" when there is no such file.
func p11kitModule(dir, name string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil // a missing directory is no module
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".module")
		if !ok || !strings.EqualFold(base, name) || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "module" {
				if v = strings.TrimSpace(v); v != "" {
					return v, nil
				}
			}
		}
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
		return "", fmt.Errorf("%s has no \"module:\" line", path)
	}
	return "", nil
}

// findLib looks for the first of names (case-insensitively) in dirs, dir by
// dir.
func findLib(dirs, names []string) string {
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, want := range names {
			for _, e := range ents {
				if strings.EqualFold(e.Name(), want) && !e.IsDir() {
					return filepath.Join(d, e.Name())
				}
			}
		}
	}
	return ""
}

func findFile(dirs []string, rel string) string {
	for _, d := range dirs {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
