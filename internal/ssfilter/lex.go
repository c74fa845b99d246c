package ssfilter

// Tokens, as ss's yylex (misc/ssfilter.y) classifies them.
type tokKind uint8

const (
	tEOF       tokKind = iota
	tNot               // ! not
	tAnd               // & && and
	tOr                // | || or
	tLParen            // (
	tRParen            // )
	tDst               // dst
	tSrc               // src
	tDport             // dport
	tSport             // sport
	tDev               // dev
	tFwmark            // fwmark
	tCgroup            // cgroup
	tAutobound         // autobound
	tGeq               // >= ge geq
	tLeq               // <= le leq
	tNeq               // != ne neq
	tEq                // = == eq
	tGt                // > gt
	tLt                // < lt
	tValue             // anything else: a host, device, mark or cgroup path
)

// keywords maps the exact (case-sensitive) spellings ss knows. Anything
// not here is a value whose meaning depends on the last keyword seen.
var keywords = map[string]tokKind{
	"!": tNot, "not": tNot,
	"&": tAnd, "&&": tAnd, "and": tAnd,
	"|": tOr, "||": tOr, "or": tOr,
	"(": tLParen, ")": tRParen,
	"dst": tDst, "src": tSrc, "dport": tDport, "sport": tSport,
	"dev": tDev, "fwmark": tFwmark, "cgroup": tCgroup, "autobound": tAutobound,
	">=": tGeq, "ge": tGeq, "geq": tGeq,
	"<=": tLeq, "le": tLeq, "leq": tLeq,
	"!=": tNeq, "ne": tNeq, "neq": tNeq,
	"=": tEq, "==": tEq, "eq": tEq,
	">": tGt, "gt": tGt,
	"<": tLt, "lt": tLt,
}

// splitArgs cuts every argument into words the way ss does: words are
// separated by blanks and tabs only (so "(dport" is one word, not two), a
// backslash makes the next character part of the word, and no word spans
// two arguments.
func splitArgs(args []string) []string {
	var words []string
	for _, arg := range args {
		i := 0
		for i < len(arg) {
			for i < len(arg) && (arg[i] == ' ' || arg[i] == '\t') {
				i++
			}
			if i == len(arg) {
				break
			}
			var w []byte
			for i < len(arg) && arg[i] != ' ' && arg[i] != '\t' {
				if arg[i] == '\\' {
					i++
					if i == len(arg) {
						break
					}
				}
				w = append(w, arg[i])
				i++
			}
			words = append(words, string(w))
		}
	}
	return words
}
