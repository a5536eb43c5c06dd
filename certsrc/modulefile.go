package certsrc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// p11-kit's module configuration directories, user first (p11-kit's
// config documentation).
func moduleConfigDirs() []string {
	var dirs []string
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "pkcs11", "modules"))
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".config", "pkcs11", "modules"))
	}
	return append(dirs, "/etc/pkcs11/modules", "/usr/share/p11-kit/modules")
}

// moduleDirs are where PKCS#11 modules are installed (p11-kit's
// p11_module_path on Debian and Fedora).
func moduleDirs() []string {
	var dirs []string
	if t := debianTriplet(); t != "" {
		dirs = append(dirs, "/usr/lib/"+t+"/pkcs11")
	}
	return append(dirs, "/usr/lib64/pkcs11", "/usr/lib/pkcs11")
}

func debianTriplet() string {
	switch runtime.GOARCH {
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

// ModuleFile returns the file of the PKCS#11 module u names:
//
//   - module-path naming a file: that file;
//   - module-path naming a directory: the module-name module in it
//     (libNAME.so or NAME.so);
//   - module-name alone: the module p11-kit knows by that name (the
//     "module:" line of NAME.module in ~/.config/pkcs11/modules,
//     /etc/pkcs11/modules or /usr/share/p11-kit/modules, a relative path
//     being relative to the system's pkcs11 module directory), else
//     libNAME.so or NAME.so in that directory. Names match
//     case-insensitively, as RFC 7512 asks.
//
// A URI with neither attribute names no module: the error wraps
// ErrNoModule.
func (u *URI) ModuleFile() (string, error) {
	return u.moduleFile(moduleConfigDirs(), moduleDirs())
}

func (u *URI) moduleFile(configDirs, libDirs []string) (string, error) {
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
		if f := findLib([]string{u.ModulePath}, u.ModuleName); f != "" {
			return f, nil
		}
		return "", fmt.Errorf("%w: no module %q in %s", ErrNoModule, u.ModuleName, u.ModulePath)
	}
	if u.ModuleName == "" {
		return "", fmt.Errorf("%w: the URI names no module; add ?module-path=/path/to/module.so or ?module-name=NAME", ErrNoModule)
	}
	if strings.ContainsAny(u.ModuleName, "/\x00") {
		return "", fmt.Errorf("%w: module-name %q is a path; use module-path", ErrNoModule, u.ModuleName)
	}
	for _, d := range configDirs {
		f, err := p11kitModule(d, u.ModuleName)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoModule, err)
		}
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			if g := findFile(libDirs, f); g != "" {
				return g, nil
			}
			return "", fmt.Errorf("%w: p11-kit module %q is %s, which is in none of %s", ErrNoModule, u.ModuleName, f, strings.Join(libDirs, ", "))
		}
		return f, nil
	}
	if f := findLib(libDirs, u.ModuleName); f != "" {
		return f, nil
	}
	return "", fmt.Errorf("%w: no module named %q (looked in p11-kit's configuration and in %s)", ErrNoModule, u.ModuleName, strings.Join(libDirs, ", "))
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

// findLib looks for libNAME.so or NAME.so (case-insensitively) in dirs.
func findLib(dirs []string, name string) string {
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, want := range []string{"lib" + name + ".so", name + ".so", name} {
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
