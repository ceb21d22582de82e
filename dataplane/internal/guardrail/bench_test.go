package guardrail

import (
	"encoding/json"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"strings"
	"testing"
)

// benchPolicy is a realistic policy: every detector on, as a team would configure them.
func benchPolicy(b *testing.B) *Policy {
	return mustCompile(b,
		newRule("email", detEmail, modeRedact, dirBoth),
		newRule("phone", detPhone, modeRedact, dirBoth),
		newRule("card", detCard, modeRedact, dirBoth),
		newRule("iban", detIBAN, modeRedact, dirBoth),
		newRule("keys", detAPIKey, modeBlock, dirBoth),
		newRule("pem", detPEM, modeBlock, dirBoth),
		newRule("injection", detInjection, modeAudit, dirBoth),
		customRule("codename", `(?i)\bproject[ -]falcon\b`, modeRedact),
	)
}

// benchChat is ~2 KB of ordinary chat text: a system prompt, a question with code and a
// previous answer.
func benchChat() []string {
	return []string{
		"You are a helpful assistant for Acme Corp. Answer concisely, cite the internal wiki when you can, " +
			"and format code with fenced blocks. Never make up APIs; if unsure, say so and suggest where to look.",
		"I'm trying to speed up our nightly export job. It reads about 2 million rows from Postgres, transforms " +
			"them and writes Parquet files to S3. Right now it takes 3 hours. Here is the main loop:\n\n```go\n" +
			"for rows.Next() {\n\tvar r Row\n\tif err := rows.Scan(&r.ID, &r.Name, &r.CreatedAt); err != nil {\n" +
			"\t\treturn fmt.Errorf(\"scan: %w\", err)\n\t}\n\tw.Write(transform(r))\n}\n```\n\n" +
			"We run it on a 4-core box with 16 GB of RAM, Go 1.22, pgx v5. The table has an index on created_at " +
			"and we filter on the last 24 hours. Is the bottleneck likely the scan, the transform or the upload?",
		"The loop itself looks fine. Three things usually dominate in jobs like this: round trips to the " +
			"database (use a cursor with a large fetch size or COPY TO STDOUT), allocation in the transform " +
			"(reuse buffers, avoid fmt in hot paths), and small sequential uploads (buffer row groups of 128 MB " +
			"and use multipart uploads with 4-8 parts in flight). Profile first: run it with pprof for five " +
			"minutes and look at the top of the CPU profile and at the blocking profile.",
		"Thanks. The profile shows 60% in the upload and 25% in scanning. We use the default uploader with " +
			"part size 5 MB. Also, should we compress with snappy or zstd? Reports are read by Athena twice a day.",
		"Raise the part size to 64 MB and upload 6 parts concurrently; that alone usually cuts upload time by " +
			"a factor of three or four on a 4-core machine. For Athena, zstd gives smaller files at similar read " +
			"speed, but snappy is cheaper to write; with two reads a day, storage and scan costs favour zstd at " +
			"level 3. For the scan, switch to COPY (SELECT ...) TO STDOUT WITH (FORMAT binary) and decode rows in " +
			"a separate goroutine so the network and the CPU overlap. Measure again after each change.",
	}
}

func BenchmarkCheckRequest(b *testing.B) {
	p := benchPolicy(b)
	clean := benchChat()
	dirty := append([]string(nil), clean...)
	dirty[3] += " My email is jane.roe@acme-corp.example, phone +1 (415) 555-2671, card 4111 1111 1111 1111."
	size := 0
	for _, t := range clean {
		size += len(t)
	}
	for _, bc := range []struct {
		name  string
		texts []string
	}{{"clean", clean}, {"findings", dirty}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				o := p.CheckRequest(bc.texts)
				if bc.name == "findings" != o.Changed {
					b.Fatal("unexpected outcome")
				}
			}
		})
	}
	b.Run("no-rules", func(b *testing.B) {
		p := mustCompile(b)
		b.ReportAllocs()
		for b.Loop() {
			p.CheckRequest(clean)
		}
	})
}

func BenchmarkStreamFilter(b *testing.B) {
	p := benchPolicy(b)
	text := strings.Join(benchChat()[1:], "\n\n")
	// Deltas of about one token.
	var deltas []string
	for rest := text; rest != ""; {
		n := min(len(rest), 4)
		deltas = append(deltas, rest[:n])
		rest = rest[n:]
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		f := p.NewStreamFilter()
		for _, d := range deltas {
			f.Write(d)
		}
		f.Flush()
	}
}

// BenchmarkDetector measures each detector alone on the clean chat.
func BenchmarkDetector(b *testing.B) {
	texts := benchChat()
	size := 0
	for _, t := range texts {
		size += len(t)
	}
	for _, bc := range []struct {
		name string
		rule *gatehousev1.GuardrailRule
	}{
		{"email", newRule("x", detEmail, modeRedact, dirBoth)},
		{"phone", newRule("x", detPhone, modeRedact, dirBoth)},
		{"card", newRule("x", detCard, modeRedact, dirBoth)},
		{"iban", newRule("x", detIBAN, modeRedact, dirBoth)},
		{"api_key", newRule("x", detAPIKey, modeRedact, dirBoth)},
		{"private_key", newRule("x", detPEM, modeRedact, dirBoth)},
		{"prompt_injection", newRule("x", detInjection, modeRedact, dirBoth)},
		{"custom_regex", customRule("x", `(?i)\bproject[ -]falcon\b`, modeRedact)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.rule)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				p.CheckRequest(texts)
			}
		})
	}
}

// BenchmarkCheckRequestJSON measures the body helper on the chat as an OpenAI request.
func BenchmarkCheckRequestJSON(b *testing.B) {
	p := benchPolicy(b)
	msgs := []map[string]string{}
	for i, t := range benchChat() {
		role := []string{"system", "user", "assistant", "user", "assistant"}[i]
		msgs = append(msgs, map[string]string{"role": role, "content": t})
	}
	clean, _ := json.Marshal(map[string]any{"model": "gpt-4o", "stream": true, "messages": msgs})
	msgs[3]["content"] += " My email is jane.roe@acme-corp.example."
	dirty, _ := json.Marshal(map[string]any{"model": "gpt-4o", "stream": true, "messages": msgs})
	for _, bc := range []struct {
		name string
		body []byte
	}{{"clean", clean}, {"findings", dirty}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.CheckRequestJSON(bc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
