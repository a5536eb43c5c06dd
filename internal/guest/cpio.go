package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The initramfs is an uncompressed cpio archive in the "newc" format
// (Linux Documentation/driver-api/early-userspace/buffer-format.rst). It is
// written here rather than by cpio(1) so that the archive can hold device
// nodes without mknod (no root needed for that part) and so that the same
// inputs give the same bytes (fixed inode numbers and mtimes).

// entryKind says what an archive entry is.
type entryKind int

const (
	kindFile entryKind = iota
	kindDir
	kindSymlink
	kindCharDev
)

// entry is one member of the guest's root file system.
type entry struct {
	kind entryKind
	perm fs.FileMode // permission bits only
	// src is the host file whose contents a kindFile entry copies (symlinks
	// followed); data is used instead when src is empty.
	src  string
	data []byte
	// target is a kindSymlink's target.
	target string
	// major and minor number a kindCharDev.
	major, minor uint32
}

// tree is the guest's root file system, keyed by absolute path.
type tree map[string]*entry

// addDirs adds p's parent directories that are not in t yet.
func (t tree) addDirs(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := t[d]; !ok {
			t[d] = &entry{kind: kindDir, perm: 0o755}
		}
	}
}

// add adds e at p, creating the parent directories.
func (t tree) add(p string, e *entry) {
	t.addDirs(p)
	t[p] = e
}

// cpio mode bits (stat's S_IF*).
const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
	modeChr  = 0o020000
)

// writeCPIO writes t to w as a newc archive, parents before children, in a
// fixed order. open returns the contents of a host file.
func writeCPIO(w io.Writer, t tree, open func(string) (io.ReadCloser, int64, error)) error {
	names := make([]string, 0, len(t))
	for p := range t {
		names = append(names, p)
	}
	// Sorting by path puts every directory before what it contains.
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 1<<20)
	for i, p := range names {
		if err := writeEntry(bw, p, t[p], uint32(i+1), open); err != nil {
			return err
		}
	}
	if err := writeHeader(bw, "TRAILER!!!", 0, 0, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("guest: writing the initramfs: %w", err)
	}
	return nil
}

// writeEntry writes one member of the archive.
func writeEntry(bw *bufio.Writer, p string, e *entry, ino uint32, open func(string) (io.ReadCloser, int64, error)) error {
	name := strings.TrimPrefix(p, "/")
	var mode uint32
	var size int64
	var body io.Reader
	var rdevMaj, rdevMin uint32
	nlink := uint32(1)
	switch e.kind {
	case kindDir:
		mode = modeDir
		nlink = 2
	case kindSymlink:
		mode = modeLink
		size = int64(len(e.target))
		body = strings.NewReader(e.target)
	case kindCharDev:
		mode = modeChr
		rdevMaj, rdevMin = e.major, e.minor
	case kindFile:
		mode = modeFile
		if e.src == "" {
			size = int64(len(e.data))
			body = bytes.NewReader(e.data)
			break
		}
		rc, n, err := open(e.src)
		if err != nil {
			return fmt.Errorf("guest: adding %s to the initramfs: %w", p, err)
		}
		defer rc.Close()
		size = n
		body = io.LimitReader(rc, n)
	default:
		return fmt.Errorf("guest: adding %s to the initramfs: unknown entry kind %d", p, e.kind)
	}
	perm := uint32(e.perm.Perm())
	if e.kind == kindSymlink {
		perm = 0o777
	}
	if err := writeHeader(bw, name, ino, mode|perm, nlink, size, rdevMaj, rdevMin); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	n, err := io.Copy(bw, body)
	if err != nil {
		return fmt.Errorf("guest: adding %s to the initramfs: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("guest: adding %s to the initramfs: %d bytes, expected %d (did the file change?)", p, n, size)
	}
	return pad4(bw, size)
}

// writeHeader writes a newc header and the padded name.
func writeHeader(w *bufio.Writer, name string, ino, mode, nlink uint32, size int64, rdevMaj, rdevMin uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("guest: %s is too large for cpio (%d bytes)", name, size)
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	_, err := fmt.Fprintf(w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rdevMaj, rdevMin, len(name)+1, 0)
	if err != nil {
		return fmt.Errorf("guest: writing the initramfs: %w", err)
	}
	if _, err := w.WriteString(name + "\x00"); err != nil {
		return fmt.Errorf("guest: writing the initramfs: %w", err)
	}
	return pad4(w, int64(110+len(name)+1))
}

// pad4 writes the zero bytes that align n to four.
func pad4(w *bufio.Writer, n int64) error {
	if r := n % 4; r != 0 {
		if _, err := w.Write(make([]byte, 4-r)); err != nil {
			return fmt.Errorf("guest: writing the initramfs: %w", err)
		}
	}
	return nil
}
