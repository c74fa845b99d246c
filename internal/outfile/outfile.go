// Package outfile opens the files socklife writes (record's -o, the ready
// file) the way a root tool must in directories others can write, like
// /tmp: a symbolic link planted at the path is not followed, a device or
// FIFO is not written, another user's file is not handed host-wide data,
// and nothing socklife did not create is chmodded.
package outfile

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrRefused is wrapped by the errors for a path Open will not write
// unless told to (Overwrite): a symbolic link, a file that is not regular,
// another user's file.
var ErrRefused = errors.New("refused")

// refusal says why an existing path is not written.
type refusal struct{ why string }

func (r refusal) Error() string        { return r.why }
func (r refusal) Is(target error) bool { return target == ErrRefused }

// File is an opened output.
type File struct {
	*os.File
	// Created says the file did not exist: socklife made it, with the
	// mode asked for, and may truncate or chmod it.
	Created bool
	// Regular says it is a regular file (always, unless Overwrite let a
	// device or FIFO through).
	Regular bool
}

// Open opens path for writing without truncating it. A missing path is
// created (O_EXCL, mode perm, fchmodded to perm through the new fd so a
// umask cannot widen or narrow it). An existing one must be a regular file
// owned by the effective user with no other hard link, reached without a
// symbolic link; with
// overwrite, whatever the path leads to is opened as it is, its owner and
// mode unchanged. Errors do not name the path: callers say it once.
func Open(path string, perm os.FileMode, overwrite bool) (*File, error) {
	flags := unix.O_WRONLY | unix.O_CLOEXEC
	if !overwrite {
		flags |= unix.O_NOFOLLOW
		// Looked at first only for a clear answer: a FIFO without a
		// reader would otherwise fail the open with ENXIO. The fstat
		// below decides.
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil {
			if err := check(&st); err != nil {
				return nil, err
			}
		}
	}
	fd, err := unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
	created := err == nil
	if errors.Is(err, unix.EEXIST) {
		// O_NONBLOCK: opening a FIFO must not wait for a reader.
		fd, err = unix.Open(path, flags|unix.O_NONBLOCK, 0)
		if err == nil {
			err = unix.SetNonblock(fd, false)
		}
	}
	if errors.Is(err, unix.ELOOP) && !overwrite {
		err = refusal{"a symbolic link, not followed"}
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	f := &File{File: os.NewFile(uintptr(fd), path), Created: created}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	f.Regular = st.Mode&unix.S_IFMT == unix.S_IFREG
	if !created && !overwrite {
		if err := check(&st); err != nil {
			f.Close()
			return nil, err
		}
	}
	if created {
		if err := f.Chmod(perm.Perm()); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// check refuses what is not a regular file of the effective user's, with
// one name.
func check(st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return refusal{"a symbolic link, not followed"}
	}
	if kind := kindOf(st.Mode); kind != "" {
		return refusal{kind + ", not a regular file"}
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return refusal{fmt.Sprintf("a file of uid %d, not of uid %d", st.Uid, euid)}
	}
	if st.Nlink > 1 {
		// a hard link planted to root's file (where protected_hardlinks
		// is off) passes the owner check: its other names are not ours
		return refusal{fmt.Sprintf("a file with %d hard links", st.Nlink)}
	}
	return nil
}

// kindOf names a file type that is not a regular file; "" for a regular one.
func kindOf(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return ""
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "a special file"
}

// Check says in advance whether Open would refuse path as it is now,
// for a caller that opens it later (the ready file, written once
// attached) but wants the refusal before anything starts. A missing path
// passes.
func Check(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return check(&st)
}
