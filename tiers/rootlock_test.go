package tiers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSecondWriterOfDataRootFailsNamingHolderPid: a second Open of a data
// root that is open fails at once, naming the holder's pid, and leaves the
// first store's acknowledged records alone; once the first is closed the
// root opens again. flock belongs to the open file description, so two
// Opens in one process conflict just as two processes do.
func TestSecondWriterOfDataRootFailsNamingHolderPid(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, Options{Root: root})
	appendN(t, s, "m", 0, 10)

	start := time.Now()
	s2, err := Open(testCtx(t), Options{Root: root})
	if err == nil {
		s2.Close()
		s.Close()
		t.Fatal("a second writer opened a data root that is open")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the second Open waited %v instead of failing at once", time.Since(start))
	}
	var le *RootLockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrRootLocked) {
		t.Fatalf("second Open: %v (%T), want a *RootLockedError", err, err)
	}
	want := fmt.Sprintf("data root %s is locked by pid %d (another aof-gateway or aof2-admin --root holds it)", root, os.Getpid())
	if le.PID != os.Getpid() || err.Error() != want {
		t.Errorf("second Open: %q, want %q", err, want)
	}

	appendN(t, s, "m", 10, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, Options{Root: root})
	defer s3.Close()
	readAll(t, s3, "m", 15)
}

// TestSharedRootLockExcludesWritersNotReaders: readers (LockRootShared)
// coexist, a writer cannot open while one reads, and a reader cannot lock
// while a writer has the root open.
func TestSharedRootLockExcludesWritersNotReaders(t *testing.T) {
	root := t.TempDir()
	r1, err := LockRootShared(root)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := LockRootShared(root)
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if s, err := Open(testCtx(t), Options{Root: root}); !errors.Is(err, ErrRootLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a writer opened a root two readers hold: %v", err)
	}
	r1.Release()
	r2.Release()
	r2.Release() // twice is harmless

	s := openStore(t, Options{Root: root})
	defer s.Close()
	_, err = LockRootShared(root)
	var le *RootLockedError
	if !errors.As(err, &le) || !le.Shared || le.PID != os.Getpid() {
		t.Fatalf("a reader locked a root a writer holds: %v", err)
	}
}

// TestRootLockOfAnotherProcessNamesItsPidAndDiesWithIt runs a second
// process that opens the root: this process cannot, and the error names
// the other's pid; once the holder is killed (no Close) the root opens.
func TestRootLockOfAnotherProcessNamesItsPidAndDiesWithIt(t *testing.T) {
	root := t.TempDir()
	holder := holdRootInChild(t, root)
	_, err := Open(testCtx(t), Options{Root: root})
	var le *RootLockedError
	if !errors.As(err, &le) || le.PID != holder.Process.Pid {
		t.Fatalf("open while pid %d holds the root: %v", holder.Process.Pid, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d", holder.Process.Pid)) {
		t.Errorf("error does not name the holder: %v", err)
	}
	holder.Process.Kill()
	holder.Wait()
	s := openStore(t, Options{Root: root})
	s.Close()
}

// holdRootInChild re-runs this test binary as a process that opens root
// and keeps it open until killed or its stdin closes (TestMain sends it
// to holdRootUntilStdinCloses, before any test runs).
func holdRootInChild(t *testing.T, root string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "AOF_TEST_HOLD_ROOT="+root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "holding" {
		t.Fatalf("helper process: %q %v", line, err)
	}
	return cmd
}

// TestMain runs the binary as the child of holdRootInChild when asked to,
// and the tests otherwise: the child is a process, not a test.
func TestMain(m *testing.M) {
	if root := os.Getenv("AOF_TEST_HOLD_ROOT"); root != "" {
		os.Exit(holdRootUntilStdinCloses(root))
	}
	os.Exit(m.Run())
}

// holdRootUntilStdinCloses opens the store at root, says "holding" on
// stdout and keeps it open until stdin closes.
func holdRootUntilStdinCloses(root string) int {
	s, err := Open(context.Background(), Options{Root: root})
	if err != nil {
		fmt.Println("open failed:", err)
		return 1
	}
	fmt.Println("holding")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	return 0
}

// abandonAsCrash models a process crash for a test that reopens a root in
// the same process: the store s is abandoned without Close, and its root
// lock is dropped, as the kernel drops it when a process dies.
func abandonAsCrash(s *Store) { s.lock.Release() }
