package llm

import (
	"encoding/json"
	"reflect"
	"strings"
)

// decodedNames are the top-level members the translators read with encoding/json,
// which matches a member name in any case (Unicode folding included: "ſtream" is
// "stream") and keeps the last. The gateway reads members by their exact name, so
// `{"stream":false,"Stream":true}` would be a plain request to the gateway (metered,
// limited and guarded as one) and a stream once translated for the provider.
var decodedNames = func() []string {
	seen := map[string]bool{}
	var names []string
	for _, v := range []any{chatBody{}, messagesBody{}, responsesBody{}} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names
}()

// checkSpelling refuses a member whose name is one the translators read, spelt
// otherwise than exactly (see decodedNames).
func checkSpelling(fields map[string]json.RawMessage) error {
	for k := range fields {
		if plainName(k) {
			continue // lower-case ASCII: equal under folding only to itself
		}
		for _, name := range decodedNames {
			if strings.EqualFold(k, name) {
				return invalidf(k, "Unrecognized request argument %q: send `%s`, spelt exactly so, once.", k, name)
			}
		}
	}
	return nil
}

func plainName(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
