package ssfilter

import "unicode"

// fnmatch is fnmatch(3) with FNM_CASEFOLD and no other flags, as ss
// matches unix socket names: '*' and '?' match any byte including '/',
// "[...]" is a set with ranges and '!' or '^' negation, and a backslash
// quotes the next byte.
func fnmatch(pattern, name string) bool {
	lower := func(c byte) byte { return byte(unicode.ToLower(rune(c))) }
	for len(pattern) > 0 {
		c := pattern[0]
		switch c {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if fnmatch(pattern, name[i:]) {
					return true
				}
			}
			return false
		case '?':
			if name == "" {
				return false
			}
			pattern, name = pattern[1:], name[1:]
			continue
		case '[':
			if name == "" {
				return false
			}
			if ok, rest, valid := matchSet(pattern, lower(name[0]), lower); valid {
				if !ok {
					return false
				}
				pattern, name = rest, name[1:]
				continue
			}
			// An unclosed '[' is an ordinary character.
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
				c = pattern[0]
			}
		}
		if name == "" || lower(c) != lower(name[0]) {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return name == ""
}

// matchSet matches c against the set at the start of p ("[...]").
func matchSet(p string, c byte, lower func(byte) byte) (match bool, rest string, valid bool) {
	i := 1
	neg := i < len(p) && (p[i] == '!' || p[i] == '^')
	if neg {
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return match != neg, p[i+1:], true
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		i++
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi = p[i+1]
			if hi == '\\' && i+2 < len(p) {
				i++
				hi = p[i+1]
			}
			i += 2
		}
		if lower(lo) <= c && c <= lower(hi) {
			match = true
		}
	}
	return false, "", false
}
