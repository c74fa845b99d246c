package snapshot

import (
	"github.com/socklife/socklife/internal/ssfilter"
)

// ssFamily says whether SSFilter lets sockets of family fam through: ss
// shows only the family a FAMILY: prefix names (inet:, inet6:, unix:).
func (o *Options) ssFamily(fam uint8) bool {
	return o.SSFilter == nil || o.SSFilter.Family == 0 || o.SSFilter.Family == fam
}

// compileSSFilter compiles SSFilter's bytecode once for every request.
// Without a program (a dev condition, a unix: host) ss tests everything in
// user space, and so does collect.
func (o *Options) compileSSFilter() {
	o.bytecode = nil
	if o.SSFilter != nil {
		if bc, ok := o.SSFilter.Expr.Bytecode(); ok {
			o.bytecode = bc
		}
	}
}

// ssKeep is ss's user-space test of a socket the kernel returned. For TCP
// and UDP the kernel has already run the filter's bytecode, if it has
// one, so only ss's own test is left (see ssfilter.Expr.MatchUserSpace).
func ssKeep(f *ssfilter.Filter, s *Socket) bool {
	if f.Family != 0 && s.Family != f.Family {
		return false
	}
	sk := ssSock(s)
	return f.Expr.MatchUserSpace(&sk)
}

// ssSock is what an ss filter looks at in s. Autobound stays false:
// inet_diag does not report it, the kernel's bytecode tests it, and ss's
// user-space test reads the port range instead.
func ssSock(s *Socket) ssfilter.Sock {
	return ssfilter.Sock{
		Family:   s.Family,
		State:    uint8(s.State),
		Local:    s.Local,
		Remote:   s.Remote,
		Ifindex:  s.Interface,
		Mark:     s.Mark,
		CgroupID: s.CgroupID,
		UnixPath: s.Path,
		Ino:      uint32(s.Inode),
		PeerIno:  uint32(s.PeerInode),
	}
}
