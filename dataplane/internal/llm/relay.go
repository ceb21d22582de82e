package llm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// commit sets the headers every answer carries, before its first byte.
func commit(w http.ResponseWriter, req *Request, res *Result) {
	if !req.Start.IsZero() {
		res.Overhead = max(time.Since(req.Start)-res.UpstreamWait, 0)
		w.Header()[OverheadHeader] = []string{FormatOverhead(res.Overhead)}
	}
}

// relayBody answers with a complete (not streamed) upstream answer.
func (c *Client) relayBody(w http.ResponseWriter, req *Request, res *Result, wk wire, d *runtime.Deployment, header http.Header, body []byte) error {
	res.ServiceTier = answerServiceTier(wk, body)
	if wk == wireResponses {
		return c.relayResponsesBody(w, req, res, header, body)
	}
	if req.Surface == SurfaceEmbeddings {
		if wk == wireGemini {
			out, u, err := geminiEmbeddings(body, req.Embeddings, d.UpstreamModel)
			if err != nil {
				return err
			}
			res.Usage, res.UsageEstimated = u, true
			return c.write(w, req, res, http.StatusOK, "application/json", out)
		}
		var u *usageJSON
		if decodeTopLevelUsage(body, &u) && u != nil {
			res.Usage = u.usage()
		} else {
			// An answer without usage is not free: its input, estimated.
			res.Usage, res.UsageEstimated = Usage{PromptTokens: req.Embeddings.EstimateTokens()}, true
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}
	passthrough := req.Filter == nil && !req.CaptureText &&
		((req.Surface == SurfaceChat && wk == wireOpenAI) || (req.Surface == SurfaceMessages && wk == wireAnthropic))
	if passthrough {
		// Only usage is read: locate the top-level member and decode just it.
		found := false
		if wk == wireOpenAI {
			var u *usageJSON
			if found = decodeTopLevelUsage(body, &u) && u != nil; found {
				res.Usage = u.usage()
			}
		} else {
			var u *anthropicUsage
			if found = decodeTopLevelUsage(body, &u) && u != nil; found {
				res.Usage = u.usage()
			}
		}
		if !found {
			estimateAnswer(req, res, wk, body)
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}

	cr, err := decodeAnswer(wk, body, d.UpstreamModel, c.now().Unix())
	if err != nil {
		return err
	}
	if u, ok := cr.usage(); ok {
		res.Usage = u
	} else {
		estimateAnswer(req, res, wk, body)
	}
	if req.Surface != SurfaceChat && len(cr.Choices) > 1 {
		// A Message or a Response is one answer: the first choice. The others (an
		// upstream that answered more than it was asked for) are neither shown nor
		// checked.
		cr.Choices = cr.Choices[:1]
	}
	if req.Filter != nil {
		for i := range cr.Choices {
			af, err := choiceFilters(req, i == 0)
			if err == nil {
				err = af.message(&cr.Choices[i].Message)
			}
			if err != nil {
				return fmt.Errorf("response filter: %w", err)
			}
		}
	}
	if req.CaptureText && len(cr.Choices) > 0 && cr.Choices[0].Message.Content != nil {
		res.Text = *cr.Choices[0].Message.Content
	}
	var out any = cr
	switch req.Surface {
	case SurfaceMessages:
		out = chatToMessages(cr, cr.Model)
	case SurfaceResponses:
		out = chatToResponse(cr, req.Responses.body, cr.Model)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("render answer: %w", err)
	}
	return c.write(w, req, res, http.StatusOK, "application/json", b)
}

// estimateAnswer charges a complete answer that reported no usage (a provider that
// leaves it out must not answer for free): the prompt's estimate and the answer's
// generated text (in the provider's body, as wk writes it) divided by 4, marked as an
// estimate.
func estimateAnswer(req *Request, res *Result, wk wire, body []byte) {
	keys := chatTextKeys
	switch wk {
	case wireAnthropic, wireGemini:
		keys = anthropicTextKeys
	case wireResponses:
		keys = responsesAnswerKeys
	}
	res.Usage = Usage{PromptTokens: req.promptTokensEstimate(), CompletionTokens: int64(textLen(body, keys)+3) / 4}
	res.UsageEstimated = true
}

// message runs the choice's filters over the texts of its complete answer: its
// content, its reasoning (each thinking block on its own, when the provider gave them,
// but on the chat surface one text across them: see settleThinking) and each tool
// call's arguments.
func (a *answerFilters) message(msg *responseMessage) error {
	if msg.Content != nil && a.content != nil {
		text, err := filterWhole(a.content, *msg.Content)
		if err != nil {
			return err
		}
		a.contentDone = true
		msg.Content = &text
	}
	if msg.Refusal != nil && a.content != nil {
		// A refusal is the model's words too: its own text, checked on its own.
		text, err := a.refusalWhole(*msg.Refusal)
		if err != nil {
			return err
		}
		msg.Refusal = text
	}
	thinking := false
	for _, tb := range msg.ThinkingBlocks {
		thinking = thinking || tb.Type == "thinking"
	}
	switch {
	case thinking && msg.ReasoningContent != nil && a.span && a.on():
		// Chat callers read the reasoning as one text: filtered whole, then shared
		// out among the thinking blocks as a stream's is (settleThinking).
		for _, tb := range msg.ThinkingBlocks {
			a.spanRaw.WriteString(tb.Thinking)
			a.holdThinking(tb)
		}
		text, err := a.whole(TextReasoning, a.spanRaw.String())
		if err != nil {
			return err
		}
		a.spanOut.WriteString(text)
		if msg.ThinkingBlocks, err = a.settleThinking(); err != nil {
			return err
		}
		msg.ReasoningContent = &text
	case thinking && msg.ReasoningContent != nil:
		// The reasoning is the text of the thinking blocks (anthropicToChat): filtered
		// once, block by block, as a stream is.
		var b strings.Builder
		for i := range msg.ThinkingBlocks {
			if err := a.thinking(&msg.ThinkingBlocks[i]); err != nil {
				return err
			}
			b.WriteString(msg.ThinkingBlocks[i].Thinking)
		}
		msg.ReasoningContent = ptr(b.String())
	default:
		for i := range msg.ThinkingBlocks {
			if err := a.thinking(&msg.ThinkingBlocks[i]); err != nil {
				return err
			}
		}
		if msg.ReasoningContent != nil {
			text, err := a.whole(TextReasoning, *msg.ReasoningContent)
			if err != nil {
				return err
			}
			msg.ReasoningContent = &text
		}
	}
	for i := range msg.ToolCalls {
		fn := &msg.ToolCalls[i].Function
		args, err := a.whole(TextToolArguments, fn.Arguments)
		if err != nil {
			return err
		}
		fn.Arguments = args
	}
	return nil
}

// maxChoices bounds the choices of an answer the response filters follow (OpenAI
// allows n up to 128).
const maxChoices = 128

// errTooManyChoices refuses a filtered answer with a choice beyond maxChoices.
var errTooManyChoices = fmt.Errorf("%w: more than %d choices", ErrUpstreamBadResponse, maxChoices)

// errNoChoiceFilter means an answer has a choice besides the first and the request
// gives no way to filter it (Filter without NewFilter): the answer is refused rather
// than passed unchecked.
var errNoChoiceFilter = errors.New("no response filter for a second choice")

// choiceFilters returns the filters of one choice of req's answer (n > 1 gives
// several, whose texts are filtered apart: a match never spans two choices). The
// first choice's content goes through req.Filter, every other choice's through a
// filter of its own; the other texts of each choice get their own (answerFilters).
// Without a Filter nothing is filtered.
func choiceFilters(req *Request, first bool) (*answerFilters, error) {
	if req.Filter == nil {
		return &answerFilters{}, nil
	}
	af := &answerFilters{content: req.Filter, newFilter: req.NewFilter, span: req.Surface == SurfaceChat}
	if first {
		return af, nil
	}
	if req.NewFilter == nil {
		return nil, errNoChoiceFilter
	}
	af.content = req.NewFilter(TextContent)
	return af, nil
}

// filterWhole runs f over one complete text.
func filterWhole(f ContentFilter, text string) (string, error) {
	out, err := f.Filter(text)
	if err != nil {
		return "", err
	}
	rest, err := f.Flush()
	if err != nil {
		return "", err
	}
	return out + rest, nil
}

// answerFilters runs a request's response filters over the texts of one choice of an
// answer: its content, and through filters from Request.NewFilter each block of
// reasoning and the arguments of each tool call, each on its own, as a stream brings
// them or whole. Without NewFilter it lets the texts but the content through.
//
// Signed thinking. Anthropic signs each thinking block and refuses one whose text no
// longer matches its signature, and the gateway cannot sign. A thinking block whose
// text a filter changed (redacted) therefore reaches the caller with the filtered text
// and without its signature: the unfiltered text never leaves the gateway, and the
// caller cannot replay a block Anthropic would reject as tampered. Chat and Messages
// requests drop unsigned thinking blocks on their way to Anthropic (see
// anthropicBlock.unsigned), so the next turn works unless it continues a tool call of
// that very turn, which Anthropic only accepts with the original block. Blocks no filter changed keep their signature;
// redacted_thinking blocks are encrypted by Anthropic and pass as they are; from
// other upstreams they are dropped (see foreignThinking).
type answerFilters struct {
	// content filters the choice's content (nil when it is not filtered);
	// contentDone says it was flushed.
	content     ContentFilter
	contentDone bool
	// contentOpen: the content filter was given text since it began.
	contentOpen bool
	// refusal filters the choice's streamed refusal (chat `delta.refusal`), opened
	// with its first delta (refusalOpen).
	refusal     ContentFilter
	refusalOpen bool
	// finished: the choice's finish reason came; what follows for it is dropped.
	finished  bool
	newFilter func(TextKind) ContentFilter
	// reasoning filters the reasoning block being streamed (nil when none is open),
	// released is what it let through so far.
	reasoning ContentFilter
	released  strings.Builder
	// ended is what was released of the reasoning block that ended last, until the
	// thinking block that carries its signature (Anthropic) claims it.
	ended    string
	hasEnded bool
	// tools filters the arguments of the tool calls being streamed, by index.
	tools map[int]ContentFilter
	// span: the choice's reasoning is one text, filtered whole across its blocks and
	// whatever comes between (the chat surface, whose callers join it into one
	// string); spanRaw is what came of it, spanOut what was released, and held the
	// thinking blocks kept until it ends (see settleThinking).
	span    bool
	spanRaw strings.Builder
	spanOut strings.Builder
	held    []heldThinking
}

// heldThinking is a thinking block of a spanning reasoning text, which ends where
// the reasoning came to end (a length of spanRaw).
type heldThinking struct {
	tb  thinkingBlock
	end int
}

// holdThinking keeps a streamed thinking block until the spanning reasoning ends.
func (a *answerFilters) holdThinking(tb thinkingBlock) {
	a.held = append(a.held, heldThinking{tb: tb, end: a.spanRaw.Len()})
}

// settleThinking returns the held thinking blocks, settled against the filtered
// spanning reasoning. One filter ran across all the blocks of the choice, so what
// it released cannot always be told apart block by block: the released text equals
// the raw text but for one region, from the first change to the last, and a block
// outside that region keeps its text and signature while a block touching it loses
// its signature; the first such block carries the whole changed region and the
// others what is left of them outside it. Joined, the blocks' texts are the
// released reasoning: a match split across two blocks is redacted in both views.
// A block whose text never came as reasoning is filtered on its own.
func (a *answerFilters) settleThinking() ([]thinkingBlock, error) {
	if len(a.held) == 0 {
		return nil, nil
	}
	raw, out := a.spanRaw.String(), a.spanOut.String()
	p := 0
	for p < len(raw) && p < len(out) && raw[p] == out[p] {
		p++
	}
	s := 0
	for s < len(raw)-p && s < len(out)-p && raw[len(raw)-1-s] == out[len(out)-1-s] {
		s++
	}
	at := func(x int) int {
		switch {
		case raw == out || x <= p:
			return x
		case x >= len(raw)-s:
			return x - len(raw) + len(out)
		}
		return len(out) - s
	}
	tbs := make([]thinkingBlock, 0, len(a.held))
	start := 0
	for _, h := range a.held {
		tb := h.tb
		if tb.Type == "thinking" && a.on() {
			text := out[at(start):at(h.end)]
			if start == h.end && tb.Thinking != "" {
				var err error
				if text, err = a.whole(TextReasoning, tb.Thinking); err != nil {
					return nil, err
				}
			}
			if text != tb.Thinking || raw[start:h.end] != tb.Thinking && start != h.end {
				tb.Thinking, tb.Signature = text, ""
			}
			start = h.end
		}
		tbs = append(tbs, tb)
	}
	a.held = nil
	return tbs, nil
}

// endContent ends the choice's content and returns what its filter held back.
func (a *answerFilters) endContent() (string, error) {
	if a.content == nil || a.contentDone {
		return "", nil
	}
	a.contentDone, a.contentOpen = true, false
	return a.content.Flush()
}

// filterContent filters the next delta of the choice's content. Content that comes
// after the content ended (a tool call or reasoning came between) is a text of its
// own, with a filter of its own.
func (a *answerFilters) filterContent(delta string) (string, error) {
	if a.content == nil {
		return delta, nil
	}
	if a.contentDone {
		if !a.on() {
			return "", errNoChoiceFilter
		}
		f := a.newFilter(TextContent)
		if f == nil {
			return delta, nil
		}
		a.content, a.contentDone = f, false
	}
	a.contentOpen = true
	return a.content.Filter(delta)
}

// refusalWhole filters a complete refusal; without a filter for it (no NewFilter) it
// is dropped rather than passed unchecked.
func (a *answerFilters) refusalWhole(text string) (*string, error) {
	if !a.on() {
		return nil, nil
	}
	f := a.newFilter(TextRefusal)
	if f == nil {
		return &text, nil
	}
	out, err := filterWhole(f, text)
	return &out, err
}

// filterRefusal filters the next delta of the choice's streamed refusal; ok is false
// when it must be dropped (no filter for it).
func (a *answerFilters) filterRefusal(delta string) (out string, ok bool, err error) {
	if a.content == nil {
		return delta, true, nil
	}
	if !a.on() {
		return "", false, nil
	}
	if !a.refusalOpen {
		a.refusal, a.refusalOpen = a.newFilter(TextRefusal), true
	}
	if a.refusal == nil {
		return delta, true, nil
	}
	out, err = a.refusal.Filter(delta)
	return out, true, err
}

// endRefusal ends the choice's streamed refusal and returns what its filter held back.
func (a *answerFilters) endRefusal() (string, error) {
	f := a.refusal
	a.refusal = nil
	if f == nil {
		return "", nil
	}
	return f.Flush()
}

// on reports whether any text but the content is filtered.
func (a *answerFilters) on() bool { return a.newFilter != nil }

// whole filters one complete text of the kind.
func (a *answerFilters) whole(kind TextKind, text string) (string, error) {
	if !a.on() {
		return text, nil
	}
	f := a.newFilter(kind)
	if f == nil {
		return text, nil
	}
	return filterWhole(f, text)
}

// reason filters the next delta of the reasoning block being streamed, opening one
// when none is.
func (a *answerFilters) reason(delta string) (string, error) {
	if !a.on() {
		return delta, nil
	}
	if a.span {
		a.spanRaw.WriteString(delta)
	}
	if a.reasoning == nil {
		if a.reasoning = a.newFilter(TextReasoning); a.reasoning == nil {
			if a.span {
				a.spanOut.WriteString(delta)
			}
			return delta, nil
		}
		a.released.Reset()
		a.hasEnded = false
	}
	out, err := a.reasoning.Filter(delta)
	a.released.WriteString(out)
	if a.span {
		a.spanOut.WriteString(out)
	}
	return out, err
}

// endReasoning ends the reasoning block being streamed and returns what its filter
// held back.
func (a *answerFilters) endReasoning() (string, error) {
	if a.reasoning == nil {
		return "", nil
	}
	tail, err := a.reasoning.Flush()
	a.reasoning = nil
	a.released.WriteString(tail)
	if a.span {
		a.spanOut.WriteString(tail)
	}
	a.ended, a.hasEnded = a.released.String(), true
	a.released.Reset()
	return tail, err
}

// thinking settles a thinking block (see the type's comment): its text becomes the
// filtered text of the reasoning block it closes (streams) or its own filtered text,
// and it loses its signature when that differs from what the provider signed.
func (a *answerFilters) thinking(tb *thinkingBlock) error {
	if tb.Type != "thinking" || !a.on() {
		return nil
	}
	text := a.ended
	if !a.hasEnded {
		var err error
		if text, err = a.whole(TextReasoning, tb.Thinking); err != nil {
			return err
		}
	}
	a.ended, a.hasEnded = "", false
	if text != tb.Thinking {
		tb.Thinking, tb.Signature = text, ""
	}
	return nil
}

// arguments filters the next delta of tool call i's arguments.
func (a *answerFilters) arguments(i int, delta string) (string, error) {
	if !a.on() || delta == "" {
		return delta, nil
	}
	f, ok := a.tools[i]
	if !ok {
		f = a.newFilter(TextToolArguments)
		if a.tools == nil {
			a.tools = map[int]ContentFilter{}
		}
		a.tools[i] = f
	}
	if f == nil {
		return delta, nil
	}
	return f.Filter(delta)
}

// endArgument ends the arguments of tool call i and returns what its filter held back.
func (a *answerFilters) endArgument(i int) (string, error) {
	f, ok := a.tools[i]
	if !ok {
		return "", nil
	}
	delete(a.tools, i)
	if f == nil {
		return "", nil
	}
	return f.Flush()
}

// endArguments ends the arguments of the tool calls being streamed but those keep
// (nil: none) reports by index, and returns what their filters held back, by tool
// call index.
func (a *answerFilters) endArguments(keep func(index int) bool) ([]toolCall, error) {
	var tails []toolCall
	for i, f := range a.tools {
		if keep != nil && keep(i) {
			continue
		}
		delete(a.tools, i)
		if f == nil {
			continue
		}
		tail, err := f.Flush()
		if err != nil {
			return nil, err
		}
		if tail != "" {
			tails = append(tails, toolCall{Index: ptr(i), Function: toolFunction{Arguments: tail}})
		}
	}
	slices.SortFunc(tails, func(x, y toolCall) int { return *x.Index - *y.Index })
	return tails, nil
}

// toolIndex is a streamed tool call's index (0 when the provider gave none).
func toolIndex(tc toolCall) int {
	if tc.Index != nil {
		return *tc.Index
	}
	return 0
}

// decodeAnswer reads a complete upstream answer as a chat completion.
func decodeAnswer(wk wire, body []byte, upstreamModel string, now int64) (*chatResponse, error) {
	switch wk {
	case wireAnthropic:
		var ar anthropicResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return nil, fmt.Errorf("%w: anthropic answer: %w", ErrUpstreamBadResponse, err)
		}
		return anthropicToChat(&ar, now), nil
	case wireGemini:
		var gr geminiResponse
		if err := json.Unmarshal(body, &gr); err != nil {
			return nil, fmt.Errorf("%w: gemini answer: %w", ErrUpstreamBadResponse, err)
		}
		return geminiToChat(&gr, upstreamModel, now), nil
	}
	var cr chatResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, fmt.Errorf("%w: chat answer: %w", ErrUpstreamBadResponse, err)
	}
	for i := range cr.Choices {
		m := &cr.Choices[i].Message
		m.ThinkingBlocks = foreignThinking(m.ThinkingBlocks)
	}
	return &cr, nil
}

// foreignThinking keeps of the thinking blocks an OpenAI-style upstream gave (another
// gateway in front of Claude, say) only what the gateway can check: the text of
// "thinking" blocks, which the response filters see. The `data` of a
// redacted_thinking block is Anthropic's encryption only when Anthropic sent it; from
// elsewhere it is unverified text no filter reads, so such blocks, the `data` of any
// other, the `thinking` of any other type and blocks of unknown types are dropped.
func foreignThinking(tbs []thinkingBlock) []thinkingBlock {
	if len(tbs) == 0 {
		return tbs
	}
	kept := tbs[:0]
	for _, tb := range tbs {
		if tb.Type == "thinking" {
			tb.Data = ""
			kept = append(kept, tb)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return kept
}

func geminiEmbeddings(body []byte, req *EmbeddingsRequest, model string) ([]byte, Usage, error) {
	var gr geminiEmbedResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, Usage{}, fmt.Errorf("%w: gemini embeddings: %w", ErrUpstreamBadResponse, err)
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, 0, len(gr.Embeddings))
	for i, e := range gr.Embeddings {
		var v any = e.Values
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(e.Values))
			for j, f := range e.Values {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(f)))
			}
			v = base64.StdEncoding.EncodeToString(buf)
		}
		data = append(data, item{Object: "embedding", Index: i, Embedding: v})
	}
	// Gemini reports no usage for embeddings: the estimate stands in.
	u := Usage{PromptTokens: req.EstimateTokens()}
	out, err := json.Marshal(map[string]any{"object": "list", "data": data, "model": model,
		"usage": map[string]int64{"prompt_tokens": u.PromptTokens, "total_tokens": u.PromptTokens}})
	return out, u, err
}

func contentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/json"
}

func (c *Client) write(w http.ResponseWriter, req *Request, res *Result, status int, ct string, body []byte) error {
	commit(w, req, res)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	res.Status = status
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write: %w: %w", ErrClientGone, err)
	}
	// The answer is complete: send it now rather than after the usage event,
	// metrics and access log the caller still has to do.
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("write: %w: %w", ErrClientGone, err)
	}
	return nil
}

// relayError answers with an upstream error: as it came when the provider speaks the
// caller's format, translated otherwise; the operator's account ids and keys are
// scrubbed from it either way (scrubOperator).
func (c *Client) relayError(w http.ResponseWriter, req *Request, res *Result, wk wire, status int, header http.Header, body []byte) {
	if ra := header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	var parsed struct {
		Error struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Status  string          `json:"status"`
		} `json:"error"`
	}
	body = scrubOperator(body)
	native := (req.Surface == SurfaceMessages && wk == wireAnthropic) || (req.Surface != SurfaceMessages && wk == wireOpenAI)
	if wk == wireResponses {
		if prev := req.Responses.upstreamPrevious; prev != "" {
			// The provider's message may name the previous response by its own id.
			body = bytes.ReplaceAll(body, []byte(prev), []byte(req.Responses.body.PreviousResponseID))
		}
		// Relayed only when it is OpenAI's error JSON: a server without the API
		// may answer anything.
		native = json.Unmarshal(body, &parsed) == nil && parsed.Error.Message != ""
	}
	if native && json.Valid(body) {
		_ = c.write(w, req, res, status, contentType(header), body)
		return
	}
	_ = json.Unmarshal(body, &parsed)
	msg := parsed.Error.Message
	if msg == "" {
		msg = "The model provider answered " + strconv.Itoa(status) + " " + http.StatusText(status) + "."
	}
	code := ""
	if wk == wireResponses && parsed.Error.Message == "" && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented) {
		msg = "The model provider answered " + strconv.Itoa(status) + " " + http.StatusText(status) +
			" at its Responses API, which it may not have"
		if why := req.Responses.unsupported; why != nil {
			msg += ": this request needs one. " + why.Message
		} else {
			msg += ", though it is registered as serving it (native_responses)."
		}
		code = "responses_api_not_found"
	}
	_ = json.Unmarshal(parsed.Error.Code, &code)
	if code == "" {
		code = strings.ToLower(parsed.Error.Status)
	}
	commit(w, req, res)
	res.Status = status
	WriteError(w, req.Surface, status, openAIErrorType(status), code, "", msg)
}
