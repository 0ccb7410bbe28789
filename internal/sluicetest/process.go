package sluicetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the sluice binary (with every connector of connectors/all) once per test
// binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		removeStaleBinaries()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binaryDirPrefix, os.Getpid()))
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binary.path, "github.com/sluicehq/sluice/cmd/sluice").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binary.err = dropFromPageCache(binary.path)
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// binaryDirPrefix starts the name of each test process's binary directory, followed by the
// process id: a test binary has no hook to remove it on exit, so each removes those whose
// process is gone (at 167 MB each, a day's test runs filled the disk).
const binaryDirPrefix = "sluice-bin-"

// removeStaleBinaries removes the binary directories of test processes that have exited.
func removeStaleBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binaryDirPrefix+"*"))
	for _, dir := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), binaryDirPrefix), "-")
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 {
			continue
		}
		if err := syscall.Kill(n, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// dropFromPageCache has the kernel forget the file's cached pages, so that a worker started
// from it loads it as from an installed binary. The Go linker writes its output through a
// shared mapping, and on kernels with large folios (6.18 here) those pages stay cached in
// 2 MB folios that every process mapping the file then maps whole: a worker started right
// after go build showed 97 MB of the binary resident, the same binary loaded from disk
// 61 MB (the memory figures of make bench are about the worker, not the linker).
func dropFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // dirty pages are not dropped
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

// FreePort returns a TCP port free on the loopback interface right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a worker running as its own process, so that a test can kill it.
type Process struct {
	Cmd      *exec.Cmd
	URL      string
	Log      *SyncBuffer
	Exited   chan struct{}
	Settings map[string]string
}

// StartProcess starts a worker process of the cluster on a free port with extra settings and
// waits until its REST API answers; it is killed when the test ends.
func (c *Cluster) StartProcess(extra map[string]string) *Process {
	c.T.Helper()
	return StartProcess(c.T, c.Settings(fmt.Sprintf("http://127.0.0.1:%d", FreePort(c.T)), extra), c.ProcessFlags...)
}

// StartProcess starts a worker process with exactly these settings (and flags of
// `sluice worker`, such as --log-level) and waits until it is healthy (joined its group).
func StartProcess(t testing.TB, settings map[string]string, flags ...string) *Process {
	t.Helper()
	args := append([]string{"worker"}, flags...)
	for k, v := range settings {
		args = append(args, "--set", k+"="+v)
	}
	p := LaunchProcess(t, settings["listeners"], args...)
	p.Settings = settings
	p.AwaitHealthy(t, 90*time.Second)
	return p
}

// LaunchProcess starts `sluice args...` serving its REST API at url, without waiting for it;
// it is killed when the test ends.
func LaunchProcess(t testing.TB, url string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	log := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, URL: url, Log: log, Exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.Exited
		if t.Failed() {
			t.Logf("worker %s log:\n%s", p.URL, log.String())
		}
	})
	return p
}

// AwaitHealthy waits until the worker answers GET /health with 200: it has joined its group
// and read its config topic. It fails the test if the worker exits first.
func (p *Process) AwaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "the worker to answer /health", func() (bool, string) {
		select {
		case <-p.Exited:
			t.Fatalf("the worker exited: %s", p.Log.String())
		default:
		}
		resp, err := http.Get(p.URL + "/health")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode == 200, resp.Status + " " + string(body) // the body says which start-up step it is in
	})
}

// Kill ends the worker with SIGKILL, as a crash would, and waits until it is gone.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Term asks the worker to stop with SIGTERM and waits until it has exited.
func (p *Process) Term() { p.signal(syscall.SIGTERM) }

func (p *Process) signal(s syscall.Signal) {
	_ = p.Cmd.Process.Signal(s)
	<-p.Exited
}
