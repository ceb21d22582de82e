package limit

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdmit is the cost of one admission of one key against key, team and model
// limits (rpm, tpm and concurrency on each) with Settle and Release, of an rpm-only
// admission (no ticket), and of a refusal.
func BenchmarkAdmit(b *testing.B) {
	newLimiter := func(b *testing.B) *Limiter {
		l, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	big := Limits{RPM: MaxLimit, TPM: MaxLimit, MaxConcurrent: 1 << 20}
	b.Run("rpm_only", func(b *testing.B) {
		l := newLimiter(b)
		checks := []Check{{Scope: ScopeKey, ID: "key-rpm", Limits: Limits{RPM: MaxLimit}}}
		now := time.Now()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_, d := l.Admit(now.Add(time.Duration(i)*time.Microsecond), checks, 0)
			if !d.Allowed {
				b.Fatal("refused")
			}
		}
	})
	b.Run("refused", func(b *testing.B) {
		l := newLimiter(b)
		checks := []Check{{Scope: ScopeKey, ID: "key-refused", Limits: Limits{RPM: 1}}}
		now := time.Now()
		l.Admit(now, checks, 0)
		b.ReportAllocs()
		for b.Loop() {
			if _, d := l.Admit(now, checks, 0); d.Allowed {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("three_levels", func(b *testing.B) {
		l := newLimiter(b)
		checks := []Check{
			{Scope: ScopeKey, ID: "key-1", Limits: big},
			{Scope: ScopeTeam, ID: "team-1", Limits: big},
			{Scope: ScopeModel, ID: ModelID("org-1", "gpt-4o"), Limits: big},
		}
		now := time.Now()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			t, d := l.Admit(now.Add(time.Duration(i)*time.Microsecond), checks, 1)
			if !d.Allowed {
				b.Fatal("refused")
			}
			t.Settle(1)
			t.Release()
		}
	})
}

// BenchmarkAdmitParallel admits from all CPUs across 100,000 keys of 1,000 teams, with
// the clock read per call. "keys" limits keys only; "three_levels" adds the team and one
// of 10 models (every request of a model meets on that model's state).
func BenchmarkAdmitParallel(b *testing.B) {
	const keys, teams, models = 100_000, 1_000, 10
	keyIDs := make([]string, keys)
	for i := range keyIDs {
		keyIDs[i] = fmt.Sprintf("key-%07d", i)
	}
	teamIDs := make([]string, teams)
	for i := range teamIDs {
		teamIDs[i] = fmt.Sprintf("team-%05d", i)
	}
	modelIDs := make([]string, models)
	for i := range modelIDs {
		modelIDs[i] = ModelID("org-1", fmt.Sprintf("model-%d", i))
	}
	big := Limits{RPM: MaxLimit, TPM: MaxLimit, MaxConcurrent: 1 << 20}
	for _, levels := range []int{1, 3} {
		name := map[int]string{1: "keys", 3: "three_levels"}[levels]
		b.Run(name, func(b *testing.B) {
			l, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 7919
				for pb.Next() {
					i++
					k := i % keys
					checks := []Check{
						{Scope: ScopeKey, ID: keyIDs[k], Limits: big},
						{Scope: ScopeTeam, ID: teamIDs[k%teams], Limits: big},
						{Scope: ScopeModel, ID: modelIDs[k%models], Limits: big},
					}
					t, d := l.Admit(time.Now(), checks[:levels], 1)
					if !d.Allowed {
						b.Error("refused")
						return
					}
					t.Settle(1)
					t.Release()
				}
			})
		})
	}
}
