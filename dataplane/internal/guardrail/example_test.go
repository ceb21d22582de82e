package guardrail_test

import (
	"errors"
	"fmt"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/guardrail"
)

func examplePolicy() *guardrail.Policy {
	p, err := guardrail.Compile([]*gatehousev1.GuardrailRule{
		{Id: "g1", Name: "no-secrets", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_API_KEY,
			Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH},
		{Id: "g2", Name: "pii", Detector: gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
			Mode: gatehousev1.GuardrailMode_GUARDRAIL_MODE_REDACT, Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_BOTH},
	})
	if err != nil {
		panic(err)
	}
	return p
}

// A request body is checked before it goes upstream.
func ExamplePolicy_CheckRequestJSON() {
	p := examplePolicy()
	o, err := p.CheckRequestJSON([]byte(`{"model":"m","messages":[{"role":"user","content":"I am ann@example.com"}]}`))
	if err != nil {
		fmt.Println("bad body:", err)
		return
	}
	fmt.Println(string(o.Body))
	fmt.Println(o.Events[0].RuleId, o.Events[0].Detector, o.Events[0].Mode, o.Events[0].Direction, o.Events[0].Matches)

	o, _ = p.CheckRequestJSON([]byte(`{"model":"m","messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLE"}]}`))
	var blocked *guardrail.BlockedError
	if errors.As(error(o.Blocked), &blocked) {
		fmt.Println(blocked) // safe to show
	}
	// Output:
	// {"messages":[{"content":"I am [REDACTED:email]","role":"user"}],"model":"m"}
	// g2 email redact request 1
	// request blocked by guardrail "no-secrets" (api_key)
}

// A streamed response goes through a StreamFilter, delta by delta.
func ExamplePolicy_NewStreamFilter() {
	f := examplePolicy().NewStreamFilter()
	for _, delta := range []string{"Write to jo", "hn@exa", "mple.com, thanks!"} {
		out, blocked := f.Write(delta)
		if blocked {
			fmt.Println("cut:", f.Blocked())
			return
		}
		fmt.Printf("%q\n", out)
	}
	out, _ := f.Flush()
	fmt.Printf("%q\n", out)
	// Output:
	// "Write to "
	// ""
	// "[REDACTED:email], thanks!"
	// ""
}

// An OpenAI chat completions stream is filtered chunk by chunk.
func ExampleChatStream() {
	s := examplePolicy().NewChatStream()
	for _, data := range []string{
		`{"id":"c","choices":[{"index":0,"delta":{"content":"mail bo"},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"b@example.org"},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	} {
		out, blocked, err := s.Chunk([]byte(data))
		if err != nil || blocked {
			fmt.Println("end the stream:", err, s.Blocked())
			return
		}
		fmt.Printf("data: %s\n", out)
	}
	if last, _ := s.Finish(); last != nil {
		fmt.Printf("data: %s\n", last)
	}
	fmt.Println("data: [DONE]")
	// Output:
	// data: {"choices":[{"delta":{"content":"mail "},"finish_reason":null,"index":0}],"id":"c"}
	// data: {"choices":[{"delta":{"content":""},"finish_reason":null,"index":0}],"id":"c"}
	// data: {"choices":[{"delta":{"content":"[REDACTED:email]"},"finish_reason":"stop","index":0}],"id":"c"}
	// data: [DONE]
}
