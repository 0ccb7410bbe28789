package file

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// appendFile is a file opened for appending, shared by all tasks of the process that write to
// the same path.
type appendFile struct {
	path string
	mu   sync.Mutex // held for each write, so the lines of different tasks never interleave
	f    *os.File
	refs int // guarded by openFiles
}

// openFiles holds the files tasks have open, by absolute path.
var openFiles = struct {
	sync.Mutex
	byPath map[string]*appendFile
}{byPath: map[string]*appendFile{}}

// openAppend opens path for appending, or shares the process's open file of that path.
// Release it when done.
func openAppend(path string) (*appendFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", path, err)
	}
	openFiles.Lock()
	defer openFiles.Unlock()
	if af, ok := openFiles.byPath[abs]; ok {
		af.refs++
		return af, nil
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", abs, err)
	}
	if err := endTornLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("opening %s: %w", abs, err)
	}
	af := &appendFile{path: abs, f: f, refs: 1}
	openFiles.byPath[abs] = af
	return af, nil
}

// endTornLine ends a last line that a crash cut short, so that the next line starts on a line
// of its own.
func endTornLine(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil && err != io.EOF {
		return fmt.Errorf("reading its last byte: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	_, err = f.Write([]byte{'\n'})
	return err
}

// write appends b, which holds whole lines, in one call.
func (af *appendFile) write(b []byte) error {
	af.mu.Lock()
	defer af.mu.Unlock()
	_, err := af.f.Write(b)
	return err
}

// sync flushes the file to disk, with the lines of every task that shares it.
func (af *appendFile) sync() error { return af.f.Sync() }

// release gives up a task's share of the file and closes it when it was the last one.
func (af *appendFile) release() error {
	openFiles.Lock()
	defer openFiles.Unlock()
	af.refs--
	if af.refs > 0 {
		return nil
	}
	delete(openFiles.byPath, af.path)
	return af.f.Close()
}
