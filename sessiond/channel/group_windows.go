package channel

import (
	"fmt"
	"os/exec"
	"unsafe"

	"golang.org/x/sys/windows"
)

// procGroup is every process a command started: a job object, Windows'
// way to hold a process tree, which children join at birth and cannot
// leave unless the job lets them.
type procGroup struct {
	job  windows.Handle // 0 when the job could not be made; then only the process is killed
	proc windows.Handle // the first process, for the fallback
}

// startGroup starts cmd, which command prepared to start suspended, puts
// it in a new job object and only then lets it run: nothing it starts can
// escape the job.
func startGroup(cmd *exec.Cmd) (*procGroup, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := uint32(cmd.Process.Pid)
	g := &procGroup{}
	proc, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("open the new process: %w", err)
	}
	g.proc = proc
	// Without its job a command could leave processes no kill reaches:
	// it is not run at all.
	if g.job, err = jobFor(proc); err != nil {
		g.kill()
		g.close()
		cmd.Wait()
		return nil, err
	}
	if err := resumeProcess(pid); err != nil {
		g.kill()
		g.close()
		cmd.Wait()
		return nil, err
	}
	return g, nil
}

// jobFor makes a job object and puts proc in it.
func jobFor(proc windows.Handle) (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("job object: %w", err)
	}
	if err := windows.AssignProcessToJobObject(job, proc); err != nil {
		windows.CloseHandle(job)
		return 0, fmt.Errorf("job object: assign the new process: %w", err)
	}
	return job, nil
}

// resumeProcess resumes the threads of a process started suspended. Go's
// os/exec closes the thread handle CreateProcess returns, so the threads
// are found in a snapshot of the system's threads.
func resumeProcess(pid uint32) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return fmt.Errorf("resume process %d: thread snapshot: %w", pid, err)
	}
	defer windows.CloseHandle(snap)
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	resumed := 0
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID != pid {
			continue
		}
		th, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, te.ThreadID)
		if err != nil {
			return fmt.Errorf("resume process %d: open thread %d: %w", pid, te.ThreadID, err)
		}
		_, err = windows.ResumeThread(th)
		windows.CloseHandle(th)
		if err != nil {
			return fmt.Errorf("resume process %d: thread %d: %w", pid, te.ThreadID, err)
		}
		resumed++
	}
	if resumed == 0 {
		return fmt.Errorf("resume process %d: no thread found", pid)
	}
	return nil
}

// kill ends every process of the job (or the first process, without one).
func (g *procGroup) kill() {
	if g.job != 0 {
		windows.TerminateJobObject(g.job, 1)
		return
	}
	windows.TerminateProcess(g.proc, 1)
}

// close releases the job and process handles. Processes still in the job
// go on running (as a Unix process group's do): only kill ends them.
func (g *procGroup) close() {
	if g.job != 0 {
		windows.CloseHandle(g.job)
		g.job = 0
	}
	if g.proc != 0 {
		windows.CloseHandle(g.proc)
		g.proc = 0
	}
}
