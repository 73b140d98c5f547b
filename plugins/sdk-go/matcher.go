package plugin

import (
	"strings"
	"unicode/utf8"
)

// MatchKind says what a Matcher selects.
type MatchKind uint8

const (
	MatchAnyOf MatchKind = iota
	MatchGlob
	MatchPresent
	MatchAbsent
)

// Matcher selects values for SelectField and SelectAttribute; the host
// evaluates it. Scalars compare by their text (see Value.Text); absent values
// match nothing but Absent().
type Matcher struct {
	kind   MatchKind
	values []string
}

// AnyOf selects values equal to one of these strings.
func AnyOf(values ...string) Matcher { return Matcher{MatchAnyOf, values} }

// Glob selects values matching one of these globs: `*` any run of
// characters, `?` exactly one.
func Glob(patterns ...string) Matcher { return Matcher{MatchGlob, patterns} }

// Present selects entities that have a value.
func Present() Matcher { return Matcher{kind: MatchPresent} }

// Absent selects entities without a value.
func Absent() Matcher { return Matcher{kind: MatchAbsent} }

func (m Matcher) Kind() MatchKind  { return m.kind }
func (m Matcher) Values() []string { return m.values }

// Hits reports whether a value with this text (present=false when absent) is
// selected — the host's rule, for hosts written in Go such as the test batch.
func (m Matcher) Hits(text string, present bool) bool {
	switch {
	case m.kind == MatchAbsent:
		return !present
	case !present:
		return false
	case m.kind == MatchPresent:
		return true
	case m.kind == MatchAnyOf:
		for _, v := range m.values {
			if v == text {
				return true
			}
		}
	default:
		for _, p := range m.values {
			if GlobMatch(p, text) {
				return true
			}
		}
	}
	return false
}

// GlobMatch reports whether text matches pattern: `*` matches any run of
// characters (dots included), `?` exactly one character, anything else itself.
func GlobMatch(pattern, text string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == text
	}
	// Iterative wildcard match with one backtrack point (the last `*`).
	p, t := 0, 0
	star, mark := -1, 0
	for t < len(text) {
		if p < len(pattern) && pattern[p] == '*' {
			star, mark = p, t
			p++
			continue
		}
		if p < len(pattern) {
			pc, pn := utf8.DecodeRuneInString(pattern[p:])
			tc, tn := utf8.DecodeRuneInString(text[t:])
			if pc == '?' || pc == tc {
				p += pn
				t += tn
				continue
			}
		}
		if star < 0 {
			return false
		}
		_, tn := utf8.DecodeRuneInString(text[mark:])
		mark += tn
		p, t = star+1, mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
