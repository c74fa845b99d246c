// Package ssfilter parses ss(8) filter expressions as iproute2's ss
// (iproute2-6.1.0) takes them, evaluates them against sockets, and
// compiles them to inet_diag bytecode.
//
// The grammar is ss's misc/ssfilter.y, checked against the ss binary
// (the differential test runs it over a zoo of real sockets):
//
//	FILTER   := { state NAME | exclude NAME | excl NAME } [ EXPRLIST ]
//	EXPRLIST := EXPR | EXPRLIST or EXPR | EXPRLIST and EXPR | EXPRLIST EXPR
//	EXPR     := ( EXPRLIST ) | not EXPR | autobound
//	          | {src|dst} [=] HOST
//	          | {sport|dport} [OP] HOST        (only the port counts)
//	          | {dev|fwmark|cgroup} [=|!=] VALUE
//
// Facts verified against the real ss:
//
//   - "or" and "and" have the same precedence and group from the left:
//     "a or b and c" is "(a or b) and c", and "a and b or c" is
//     "(a and b) or c". The man page is wrong where it says "and" binds
//     tighter than "or". Juxtaposition is "and" at that same level.
//   - "not" applies to the one EXPR after it: "not a and b" is
//     "(not a) and b"; "not not a" is a.
//   - Words are split at blanks and tabs only, within each argument, and a
//     backslash quotes the next character: "(dport" is one word (an
//     unparsable host), so parentheses must stand alone, and "sport=:80"
//     is refused. Keywords and operators are case-sensitive.
//   - state/exclude are only recognised as whole arguments before the
//     expression; "state established" as one argument, or a state word
//     after the expression started, is refused (ss reads "state" as a
//     host). Several state words combine in order: the first "state"
//     starts from nothing, the first "exclude" from all; then "state"
//     adds and "exclude" removes. State names are case-insensitive; ss
//     also takes "unknown" (bit 0), "unconnected", "close", "syn-rcv",
//     but not "listen". A mask that ends up empty ("exclude all") makes
//     ss fall back to its flags' default rather than show nothing.
//   - Operators: = == eq, != ne neq, < lt, > gt, <= le leq, >= ge geq.
//     src/dst take only an optional "="; dev/fwmark/cgroup take "=" or
//     "!="; sport/dport take all of them, and none means "=". ss turns
//     "> P" into "not <= P", "< P" into "not >= P", "!=" into "not =".
//   - Hosts: [FAMILY:]ADDR[/LEN][:PORT], "[ADDR[/LEN]]:PORT", "*",
//     "*:PORT", ":PORT". The port is split at the last ':' (after a '/'
//     if any), so an unbracketed "::1" is refused but "fe80::/64" and
//     "::1:" work. Ports are integers (C strtol: 0x.., 0..) or TCP service
//     names from /etc/services (case-sensitive; ss resolves them even with
//     -n). IPv4 is iproute2's own parser: "10" is 10.0.0.0, parts may be
//     hex or octal. "any", "all", "default" match every address; LEN may
//     be a dotted mask. A FAMILY prefix (inet:, inet6:, unix:) makes ss
//     show that family only and parse later hosts in it (Filter.Family).
//   - ss filters TCP twice: the kernel runs the bytecode, then ss runs its
//     own test on what comes back, and the two differ: the kernel checks
//     families (an IPv4 prefix never matches a pure IPv6 socket, even
//     0.0.0.0/0), compares ports as u16 (so "sport > *" shows nothing,
//     while user space alone would show everything), and reads
//     "autobound" as "port not bound by the user", where ss's user space
//     reads it as "port in the ephemeral range". Expr.Match is both, as
//     what ss prints.
//   - An IPv4 prefix matches a v4-mapped IPv6 socket (in both tests). But
//     ss's user-space test also compares an IPv4 prefix with the first
//     bytes of any IPv6 address, so "not dst 0.0.0.0/8" hides v4-mapped
//     and all-zero-prefixed IPv6 sockets although the kernel keeps them.
//   - -tan exclude all shows what -tn shows: a state mask that cancels out
//     falls back to the TCP default (Filter.StateMask), not to -a's.
//
// Not supported: host names (ss asks DNS; here they are refused),
// link:, netlink: and vsock: hosts, ss's -F filter files, and RPC service
// names (-r). dev conditions are matched in user space only, as ss does.
package ssfilter
