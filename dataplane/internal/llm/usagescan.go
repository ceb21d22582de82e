package llm

import (
	"encoding/json"
	"strconv"
)

// decodeTopLevelUsage decodes the top-level "usage" member of a complete JSON answer
// into *dst, as json.Unmarshal(body, &struct{ Usage *T `json:"usage"` }{}) would, and
// reports whether that decode succeeded. It validates body and locates the member with
// a single pass, decoding only the member's value; on anything it does not handle
// exactly (escaped or non-ASCII keys, a repeated member, deep nesting) it falls back
// to the full decode.
func decodeTopLevelUsage[T any](body []byte, dst **T) bool {
	start, end, found, ok := scanTopLevelUsage(body)
	if !ok {
		var parsed struct {
			Usage *T `json:"usage"`
		}
		if json.Unmarshal(body, &parsed) != nil {
			return false
		}
		*dst = parsed.Usage
		return true
	}
	if !found {
		*dst = nil
		return true
	}
	if p, ok := any(dst).(**usageJSON); ok {
		if u, ok := fastUsageJSON(body[start:end]); ok {
			*p = u
			return true
		}
	}
	var u *T
	if json.Unmarshal(body[start:end], &u) != nil {
		return false
	}
	*dst = u
	return true
}

// scanMaxDepth bounds the nesting the scanner follows; deeper documents take the full
// decode, which applies encoding/json's own limit.
const scanMaxDepth = 512

// scanTopLevelUsage checks that body is one valid JSON object (as encoding/json's
// validator accepts it) and returns the span of its "usage" member's value (matched as
// encoding/json matches field names, ASCII case-insensitively). ok is false when body
// is not such an object or when the scan cannot decide exactly; the caller then falls
// back to the full decode.
func scanTopLevelUsage(b []byte) (start, end int, found, ok bool) {
	repeated := false
	ok = scanObject(b, func(key []byte, vs, ve int) bool {
		if isUsageKey(key) {
			if found {
				repeated = true // a repeated member merges: leave it to the full decode
				return false
			}
			start, end, found = vs, ve, true
		}
		return true
	})
	if !ok || repeated {
		return 0, 0, false, false
	}
	return start, end, found, true
}

// scanObject checks in one pass that b is one valid JSON object and calls member
// with each member's key and the span b[vs:ve] of its value, in order. It reports
// false, having possibly called member for some members, when b is not such an
// object, when a key is not plain ASCII without escapes (the caller decodes fully
// then), or when member returns false.
func scanObject(b []byte, member func(key []byte, vs, ve int) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ks := i + 1
		ke, plain := scanString(b, i)
		if ke < 0 || !plain {
			return false
		}
		key := b[ks : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		vs := i
		i = skipValue(b, i, 1)
		if i < 0 || !member(key, vs, i) {
			return false
		}
		var more bool
		if i, more = afterValue(b, i, '}'); !more {
			return i == len(b)
		}
	}
}

// afterValue moves past the separator after a member or element that ends at b[i]: more is
// true at a comma, i then the start of the next one; at the closing bracket (which
// must end b) more is false and i is len(b); anything else gives -1.
func afterValue(b []byte, i int, closing byte) (int, bool) {
	i = skipWS(b, i)
	switch {
	case i >= len(b):
		return -1, false
	case b[i] == ',':
		return skipWS(b, i+1), true
	case b[i] == closing && skipWS(b, i+1) == len(b):
		return len(b), false
	}
	return -1, false
}

// scanArray checks in one pass that b is one valid JSON array and calls elem with the
// span b[vs:ve] of each element, in order. It reports false, having possibly called
// elem for some elements, when b is not such an array or when elem returns false.
func scanArray(b []byte, elem func(vs, ve int) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		vs := i
		i = skipValue(b, i, 1)
		if i < 0 || !elem(vs, i) {
			return false
		}
		var more bool
		if i, more = afterValue(b, i, ']'); !more {
			return i == len(b)
		}
	}
}

// members returns the values of b's members named (ASCII case-insensitively, as
// encoding/json matches field names) by names, in names' order, nil for a member not
// there. ok is false when b is not a JSON object with plain keys or names a member
// twice: the caller then decodes with encoding/json, which merges repeated members.
func members(b []byte, names ...string) (vals [4][]byte, ok bool) {
	ok = scanObject(b, func(key []byte, vs, ve int) bool {
		for j, n := range names {
			if asciiEqualFold(key, n) {
				if vals[j] != nil {
					return false
				}
				vals[j] = b[vs:ve]
			}
		}
		return true
	})
	return vals, ok
}

// stringLen is the length of the JSON string value v once decoded; ok is false when v
// is not a string.
func stringLen(v []byte) (n int, ok bool) {
	if len(v) < 2 || v[0] != '"' {
		return 0, false
	}
	if end, plain := scanString(v, 0); end == len(v) && plain {
		return len(v) - 2, true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return 0, false
	}
	return len(s), true
}

func isUsageKey(k []byte) bool {
	const want = "usage"
	if len(k) != len(want) {
		return false
	}
	for j := range len(want) {
		if k[j]|0x20 != want[j] {
			return false
		}
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString returns the index just past the string starting at b[i] (a quote), or -1
// when it is invalid; plain reports that it holds only ASCII and no escapes.
func scanString(b []byte, i int) (next int, plain bool) {
	plain = true
	for i++; i < len(b); {
		// Skip the run of plain characters first: most of a string's bytes.
		for i < len(b) && !notPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, plain
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return -1, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return -1, false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return -1, false
					}
				}
				i += 6
			default:
				return -1, false
			}
		case c < 0x20:
			return -1, false
		default:
			if c >= 0x80 {
				plain = false
			}
			i++
		}
	}
	return -1, false
}

// notPlain marks the bytes that end a string's plain run: the closing quote, an escape,
// control characters and bytes beyond ASCII.
var notPlain = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipValue returns the index just past the JSON value starting at b[i], or -1 when it
// is invalid or nested deeper than scanMaxDepth.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		n, _ := scanString(b, i)
		return n
	case c == '{':
		if depth >= scanMaxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i, _ = scanString(b, i); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipValue(b, skipWS(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case '}':
				return i + 1
			default:
				return -1
			}
		}
	case c == '[':
		if depth >= scanMaxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(b, i)
	}
	return -1
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipNumber follows the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// fastUsageJSON decodes an OpenAI usage value (already validated) as json.Unmarshal
// would, for the common shape only: exact field names, integer values, no repeated
// fields. ok is false for anything else, which takes json.Unmarshal.
func fastUsageJSON(b []byte) (u *usageJSON, ok bool) {
	if string(b) == "null" {
		return nil, true
	}
	u = &usageJSON{}
	var seen [4]bool
	ok = fastObject(b, func(key, v []byte) bool {
		var f int
		switch string(key) {
		case "prompt_tokens":
			f = 0
		case "completion_tokens":
			f = 1
		case "total_tokens":
			f = 2
		case "prompt_tokens_details":
			f = 3
		default:
			return unknownField(key, "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details")
		}
		if seen[f] {
			return false
		}
		seen[f] = true
		switch f {
		case 0:
			return fastInt(v, &u.PromptTokens)
		case 1:
			return fastInt(v, &u.CompletionTokens)
		case 2:
			return fastInt(v, &u.TotalTokens)
		}
		if string(v) == "null" {
			return true
		}
		d := &tokenDetails{}
		u.PromptTokensDetails = d
		var seenCached bool
		return fastObject(v, func(key, v []byte) bool {
			if string(key) != "cached_tokens" {
				return unknownField(key, "cached_tokens")
			}
			if seenCached {
				return false
			}
			seenCached = true
			return fastInt(v, &d.CachedTokens)
		})
	})
	return u, ok
}

// unknownField reports that encoding/json would ignore key: it matches none of the
// names, even case-insensitively. Keys reaching it are plain ASCII.
func unknownField(key []byte, names ...string) bool {
	for _, n := range names {
		if asciiEqualFold(key, n) {
			return false
		}
	}
	return true
}

// fastObject is scanObject handing member each value itself.
func fastObject(b []byte, member func(key, v []byte) bool) bool {
	return scanObject(b, func(key []byte, vs, ve int) bool { return member(key, b[vs:ve]) })
}

// fastInt stores an integer literal that fits in int64, as encoding/json does.
func fastInt(v []byte, dst *int64) bool {
	if len(v) == 0 || len(v) > 20 {
		return false
	}
	for j, c := range v {
		if !isDigit(c) && (c != '-' || j != 0) {
			return false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

// asciiEqualFold is strings.EqualFold for an ASCII key and name.
func asciiEqualFold(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for j := range len(name) {
		a, b := key[j], name[j]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
