package demoupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	replyPrefix = "Hello from the demo model. You said: "
	replyEmpty  = "Hello from the demo model."
	// maxEchoRunes bounds how much of the user's message is echoed back.
	maxEchoRunes = 200
	// Token estimates: OpenAI's rule of thumb of ~4 characters a token, a
	// few tokens of framing per message and per request, and the low-detail
	// price of an image.
	charsPerToken      = 4
	tokensPerMessage   = 3
	tokensPerRequest   = 3
	tokensPerMediaPart = 85
	systemFingerprint  = "fp_demo"
)

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           int `json:"max_tokens"`
	MaxCompletionTokens int `json:"max_completion_tokens"`
}

type chatMessage struct {
	Role    string      `json:"role"`
	Content chatContent `json:"content"`
}

// chatContent is a message's content, given either as a string or as an
// array of content parts.
type chatContent struct {
	text  string // the text, or the text parts joined by "\n"
	media int    // non-text parts: images, audio, files
}

func (c *chatContent) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 'n':
		return nil
	case '"':
		// Most content has no escapes; its text is then the literal itself
		// and a second pass through encoding/json is not needed.
		if lit := b[1 : len(b)-1]; bytes.IndexByte(lit, '\\') < 0 && utf8.Valid(lit) {
			c.text = string(lit)
			return nil
		}
		return json.Unmarshal(b, &c.text)
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Type != "text" {
				c.media++
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(p.Text)
		}
		c.text = sb.String()
		return nil
	default:
		return badRequest("Invalid type for message content: expected a string or an array of content parts.", "messages", nil)
	}
}

// completion is everything needed to render one chat reply, in either mode.
type completion struct {
	id               uint64
	created          int64
	model            string
	content          string // the full reply; content[:end] is sent
	end              int
	promptTokens     int
	completionTokens int
	includeUsage     bool
	drop             bool
}

func (c *completion) finishReason() string {
	if c.end < len(c.content) {
		return "length"
	}
	return "stop"
}

func (s *server) chatCompletions(w http.ResponseWriter, r *http.Request) error {
	sc := s.pool.Get().(*scratch)
	defer s.release(sc)
	if err := readBody(w, r, sc); err != nil {
		return err
	}
	var req chatRequest
	if err := decodeJSON(sc.in.Bytes(), &req); err != nil {
		return err
	}
	if req.Model == "" {
		return badRequest("You must provide a model parameter.", "model", nil)
	}
	if len(req.Messages) == 0 {
		return badRequest("'messages' must contain at least one message.", "messages", nil)
	}
	if req.MaxTokens < 0 || req.MaxCompletionTokens < 0 {
		return badRequest("max_tokens and max_completion_tokens must not be negative.", "max_tokens", nil)
	}
	limit := req.MaxCompletionTokens
	if limit == 0 {
		limit = req.MaxTokens
	}

	user := lastUserText(req.Messages)
	var trig triggers
	if strings.Contains(user, "[[") {
		trig = parseTriggers(user)
	}
	ctx := r.Context()
	var p pacer
	defer p.stop()
	if err := p.wait(ctx, trig.sleep); err != nil {
		return err
	}
	if trig.status != 0 {
		return injectedError(trig.status, req.Model)
	}

	h := fnv.New64a()
	h.Write(sc.in.Bytes())
	c := completion{
		id:           h.Sum64(),
		created:      s.now().Unix(),
		model:        req.Model,
		content:      replyText(user),
		promptTokens: promptTokens(req.Messages),
		includeUsage: req.StreamOptions.IncludeUsage,
		drop:         trig.drop,
	}
	c.end, c.completionTokens = cutPieces(c.content, limit)
	var rid [20]byte
	w.Header()["X-Request-Id"] = []string{string(appendHex64(append(rid[:0], "req_"...), c.id))}

	if req.Stream {
		return s.streamChat(w, r, sc, &p, &c)
	}
	if c.drop {
		// Abort before anything is written: the client sees the connection
		// close (HTTP/1) or the stream reset (HTTP/2) with no response.
		panic(http.ErrAbortHandler)
	}
	if err := p.wait(ctx, s.generationTime(c.completionTokens)); err != nil {
		return err
	}
	sc.out = c.appendCompletion(sc.out[:0])
	return writeBody(w, http.StatusOK, s.hdrJSON, sc.out)
}

// decodeJSON decodes a request body; content errors raised as apiErrors
// keep their message, anything else is reported as unparsable JSON.
func decodeJSON(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*apiError](err); ok {
		return err
	}
	return badRequest("We could not parse the JSON body of your request.", "", fmt.Errorf("decode request: %w", err))
}

// generationTime is how long a streamed reply of n chunks would take.
func (s *server) generationTime(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return s.firstTokenDelay + time.Duration(n-1)*s.tokenDelay
}

func lastUserText(msgs []chatMessage) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content.text
		}
	}
	return ""
}

// replyText is the deterministic reply to the last user message.
func replyText(user string) string {
	user = strings.TrimSpace(user)
	if user == "" {
		return replyEmpty
	}
	n := 0
	for i := range user {
		if n == maxEchoRunes {
			return replyPrefix + strings.TrimRight(user[:i], " \t\n\r\v\f") + "..."
		}
		n++
	}
	return replyPrefix + user
}

func promptTokens(msgs []chatMessage) int {
	n := tokensPerRequest
	for i := range msgs {
		chars := utf8.RuneCountInString(msgs[i].Content.text)
		n += (chars+charsPerToken-1)/charsPerToken + tokensPerMessage + msgs[i].Content.media*tokensPerMediaPart
	}
	return n
}

// nextPiece returns the end of the piece of s that starts at i: a run of
// whitespace and the word after it. Pieces are the streamed chunks and the
// unit of completion_tokens; concatenated they give back s exactly.
func nextPiece(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return i
}

// isSpace reports ASCII whitespace; UTF-8 continuation bytes never match,
// so pieces always split between runes.
func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// cutPieces returns the end of the first limit pieces of s (all of s when
// limit is 0) and how many pieces that is.
func cutPieces(s string, limit int) (end, n int) {
	for end < len(s) && (limit == 0 || n < limit) {
		end = nextPiece(s, end)
		n++
	}
	return end, n
}

func (c *completion) appendCompletion(b []byte) []byte {
	b = append(b, `{"id":"chatcmpl-`...)
	b = appendHex64(b, c.id)
	b = append(b, `","object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, c.created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, c.model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	b = appendString(b, c.content[:c.end])
	b = append(b, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
	b = append(b, c.finishReason()...)
	b = append(b, `"}],"usage":`...)
	b = c.appendUsage(b)
	b = append(b, `,"system_fingerprint":"`+systemFingerprint+`"}`...)
	return b
}

func (c *completion) appendUsage(b []byte) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(c.promptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(c.completionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(c.promptTokens+c.completionTokens), 10)
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}`+
		`,"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
	return b
}

// streamChat writes the reply as server-sent events: a role chunk, one
// chunk per piece, a finish chunk, the usage chunk when asked for, [DONE].
// Every event is one Write and one Flush, as a model server produces them. The chunk header up to
// `"choices":[` is the same for every event, so it is encoded once and each
// event is appended after it.
func (s *server) streamChat(w http.ResponseWriter, r *http.Request, sc *scratch, p *pacer, c *completion) error {
	ctx := r.Context()
	if err := p.wait(ctx, s.firstTokenDelay); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h["Content-Type"] = s.hdrSSE
	h["Cache-Control"] = s.hdrNoCache
	h["X-Accel-Buffering"] = s.hdrNoBuffer
	w.WriteHeader(http.StatusOK)

	b := append(sc.out[:0], `data: {"id":"chatcmpl-`...)
	b = appendHex64(b, c.id)
	b = append(b, `","object":"chat.completion.chunk","created":`...)
	b = strconv.AppendInt(b, c.created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, c.model)
	b = append(b, `,"system_fingerprint":"`+systemFingerprint+`","choices":[`...)
	head := len(b)
	defer func() { sc.out = b }() // keep the grown buffer for the pool

	// With include_usage, OpenAI sends "usage":null on every chunk but the last.
	tail := "}\n\n"
	if c.includeUsage {
		tail = `,"usage":null}` + "\n\n"
	}

	b = append(b[:head], `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`...)
	b = append(b, tail...)
	if err := emit(w, rc, b); err != nil {
		return err
	}
	for i, n := 0, 0; i < c.end; n++ {
		if n > 0 {
			if err := p.wait(ctx, s.tokenDelay); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("stream: %w: %w", errClientGone, err)
			}
		}
		j := nextPiece(c.content, i)
		b = append(b[:head], `{"index":0,"delta":{"content":`...)
		b = appendString(b, c.content[i:j])
		b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
		b = append(b, tail...)
		if err := emit(w, rc, b); err != nil {
			return err
		}
		if c.drop {
			// Two chunks are out; cut the connection mid-stream.
			panic(http.ErrAbortHandler)
		}
		i = j
	}

	b = append(b[:head], `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	b = append(b, c.finishReason()...)
	b = append(b, `"}]`...)
	b = append(b, tail...)
	if err := emit(w, rc, b); err != nil {
		return err
	}
	if c.includeUsage {
		b = append(b[:head], `],"usage":`...)
		b = c.appendUsage(b)
		b = append(b, "}\n\n"...)
		if err := emit(w, rc, b); err != nil {
			return err
		}
	}
	b = append(b[:0], "data: [DONE]\n\n"...)
	return emit(w, rc, b)
}

func emit(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write event: %w: %w", errClientGone, err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w: %w", errClientGone, err)
	}
	return nil
}
