package llm

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"

	protowire "github.com/gatehouse-dev/gatehouse/proto/wire"
)

// A native Responses answer's id names state kept in the provider account that
// served it (the response, its items, the conversation up to it). The caller never
// sees that id: it gets a sealed one, which carries the provider and the provider's
// id encrypted under a key every gateway derives from its config keys, bound to the
// caller's org and team. A follow-up (`previous_response_id`) is opened with the
// caller's own org and team, so another team's id — or a provider id obtained outside
// the gateway — is not found, and it goes to a deployment of the same provider,
// whose account holds the state.

// ResponseIDs seals and opens response ids.
type ResponseIDs struct{ kr *protowire.Keyring }

// sealedPrefix starts every sealed response id ("resp_" keeps the API's shape).
const sealedPrefix = "resp_gh1"

// responseIDsLabel names the derived keys; a new label would be a new id format.
const responseIDsLabel = "gatehouse response ids v1"

// NewResponseIDs derives the sealing keys from the gateway's config keyring.
func NewResponseIDs(kr *protowire.Keyring) (*ResponseIDs, error) {
	d, err := kr.Derive(responseIDsLabel)
	if err != nil {
		return nil, err
	}
	return &ResponseIDs{kr: d}, nil
}

// seal returns the id the caller of tenant sees for the provider's upstreamID: always
// the same one (a fixed nonce), so an id the provider names again — a retrieved
// response's previous_response_id — is the one the caller was given.
func (s *ResponseIDs) seal(tenant, providerID, upstreamID string) (string, bool) {
	kid, sealed := s.kr.SealBytesFixed([]byte(providerID+"\x00"+upstreamID), []byte(tenant))
	if len(kid) > 255 {
		return "", false
	}
	b := make([]byte, 0, 1+len(kid)+len(sealed))
	b = append(b, byte(len(kid)))
	b = append(b, kid...)
	b = append(b, sealed...)
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(b), true
}

// open returns the provider and the provider's id of a sealed id, if tenant sealed it.
func (s *ResponseIDs) open(tenant, id string) (providerID, upstreamID string, ok bool) {
	rest, ok := strings.CutPrefix(id, sealedPrefix)
	if !ok || len(rest) > 4096 {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) < 1 {
		return "", "", false
	}
	n := 1 + int(b[0]) // in int: a byte would wrap at 255
	if len(b) < n {
		return "", "", false
	}
	kid, sealed := string(b[1:n]), b[n:]
	plain, err := s.kr.OpenBytes(kid, sealed, []byte(tenant))
	if err != nil {
		return "", "", false
	}
	providerID, upstreamID, ok = strings.Cut(string(plain), "\x00")
	return providerID, upstreamID, ok && providerID != "" && upstreamID != ""
}

// errPreviousResponseNotFound is the answer to a previous_response_id the caller's
// team did not get from this gateway, in the API's own words.
func errPreviousResponseNotFound(id string) *InvalidRequestError {
	if len(id) > 200 {
		id = id[:200] + "…"
	}
	return &InvalidRequestError{Param: "previous_response_id", Code: "previous_response_not_found",
		Message: "Previous response with id '" + id + "' not found."}
}

// errPreviousResponseElsewhere refuses a deployment of another provider than the one
// holding the previous response.
var errPreviousResponseElsewhere = invalidf("previous_response_id",
	"The previous response is kept by a provider this model does not use: continue it with a model served by the same provider, or send the conversation in `input`.")

// openPrevious resolves a native request's previous_response_id: the provider that
// must serve it and the id the provider knows. Without sealing (no ResponseIDs) the
// id goes up as it came.
func (c *Client) openPrevious(req *Request) error {
	r := req.Responses
	if r == nil || r.body == nil || r.body.PreviousResponseID == "" || c.cfg.ResponseIDs == nil {
		return nil
	}
	provider, upstream, ok := c.cfg.ResponseIDs.open(req.Tenant, r.body.PreviousResponseID)
	if !ok {
		return errPreviousResponseNotFound(r.body.PreviousResponseID)
	}
	r.pinProvider, r.upstreamPrevious = provider, upstream
	return nil
}

// idSealer replaces the provider's response ids with their sealed forms in what is
// relayed of one native answer: the previous response's (the answer echoes it), known
// from the request, and the answer's own, learnt from the answer itself. An id is
// replaced wherever it appears, inside texts too (an error event's message names it),
// unless it is too short to be told from other text: then only as a whole JSON string.
type idSealer struct {
	ids              *ResponseIDs
	tenant, provider string
	// pairs are provider ids and what replaces them, longest first.
	pairs   [][2][]byte
	learned bool
}

func newIDSealer(ids *ResponseIDs, tenant, provider string, r *ResponsesRequest) *idSealer {
	if ids == nil {
		return nil
	}
	s := &idSealer{ids: ids, tenant: tenant, provider: provider}
	if r.upstreamPrevious != "" {
		s.add(r.upstreamPrevious, r.body.PreviousResponseID)
	}
	return s
}

// minBareID is the shortest provider id replaced wherever it appears.
const minBareID = 16

// add has id replaced by sealed.
func (s *idSealer) add(id, sealed string) {
	p := [2][]byte{[]byte(id), []byte(sealed)}
	if len(id) < minBareID {
		p = [2][]byte{mustMarshal(id), mustMarshal(sealed)}
	}
	s.pairs = append(s.pairs, p)
	slices.SortStableFunc(s.pairs, func(a, b [2][]byte) int { return len(b[0]) - len(a[0]) })
}

// learn takes the answer's id from obj, a response object (the non-streamed body or
// an event's `response`), unless one is known.
func (s *idSealer) learn(obj []byte) {
	if s == nil || s.learned {
		return
	}
	v, ok := members(obj, "id")
	var id string
	if !ok || v[0] == nil || !decodeString(v[0], &id) || id == "" {
		return
	}
	s.learned = true
	if sealed, ok := s.ids.seal(s.tenant, s.provider, id); ok {
		s.add(id, sealed)
	}
}

// apply returns b with the provider's ids replaced by the sealed ones.
func (s *idSealer) apply(b []byte) []byte {
	if s == nil {
		return b
	}
	for _, p := range s.pairs {
		if bytes.Contains(b, p[0]) {
			b = bytes.ReplaceAll(b, p[0], p[1])
		}
	}
	return b
}
