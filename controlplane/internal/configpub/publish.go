package configpub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/database"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/gatehouse-dev/gatehouse/proto/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// publisherLock is the advisory lock id that makes one control plane replica at a time
// drain the outbox, so versions of an org reach KV in order.
const publisherLock = 0x6761746563666730 // "gatecfg0"

// notifyChannel is the Postgres channel the outbox insert notifies.
const notifyChannel = "gatehouse_config_outbox"

// Publisher drains the config outbox into the KV bucket.
type Publisher struct {
	store    *store.Store
	kv       jetstream.KeyValue
	keyring  *wire.Keyring
	regions  []string
	maxBytes int
	log      *slog.Logger
	now      func() time.Time
	kick     chan struct{}
}

// NewPublisher returns a publisher for regions. maxValueBytes is the bucket's value
// size limit.
func NewPublisher(st *store.Store, kv jetstream.KeyValue, kr *wire.Keyring, regions []string, maxValueBytes int, log *slog.Logger) *Publisher {
	return &Publisher{
		store: st, kv: kv, keyring: kr, regions: regions, log: log, now: time.Now,
		// The envelope adds the meta, key id, nonce and GCM tag: well under 1 KiB.
		maxBytes: maxValueBytes - 1024,
		kick:     make(chan struct{}, 1),
	}
}

// Kick asks the publisher to drain the outbox now (it also drains on Postgres
// notifications and every second).
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.store.EnqueueAllOrgs(ctx, "startup"); err != nil {
		return fmt.Errorf("config publisher: %w", err)
	}
	notified := make(chan struct{}, 1)
	go database.Listen(ctx, p.store.Pool(), notifyChannel, notified, p.log)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := p.drain(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("config publish failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-p.kick:
		case <-notified:
		}
	}
}

// drain publishes every pending org once. Only the replica holding the advisory lock
// publishes; the others return at once and try again later.
func (p *Publisher) drain(ctx context.Context) error {
	conn, err := p.store.Pool().Acquire(ctx)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "select pg_try_advisory_lock($1)", int64(publisherLock)).Scan(&locked); err != nil {
		return fmt.Errorf("drain: lock: %w", err)
	}
	if !locked {
		return nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", int64(publisherLock)) //nolint:errcheck // released with the session anyway

	for {
		pending, err := p.store.PendingConfig(ctx, 100)
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		var errs []error
		for _, po := range pending {
			if err := p.PublishOrg(ctx, po.OrgID); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := p.store.AckConfig(ctx, po); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			// Leave failed orgs in the outbox for the next tick rather than spinning.
			return errors.Join(errs...)
		}
	}
}

// PublishOrg compiles and publishes org's snapshot to every region. A deleted org has
// its keys removed from the bucket.
func (p *Publisher) PublishOrg(ctx context.Context, orgID string) error {
	cfg, err := p.store.LoadOrgConfig(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		for _, region := range p.regions {
			if err := p.kv.Delete(ctx, wire.ConfigKey(region, orgID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("publish org %s: delete: %w", orgID, err)
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	now := p.now()
	for _, region := range p.regions {
		c, err := Compile(cfg, region, now, p.maxBytes)
		if err != nil {
			return err
		}
		value, err := p.keyring.Seal(c.Meta, c.Body)
		if err != nil {
			return fmt.Errorf("publish org %s: %w", orgID, err)
		}
		if _, err := p.kv.Put(ctx, wire.ConfigKey(region, orgID), value); err != nil {
			return fmt.Errorf("publish org %s region %s: %w", orgID, region, err)
		}
		p.log.Info("config published", "org_id", orgID, "region", region, "version", c.Meta.Version,
			"sha256", c.Meta.Sha256[:12], "bytes", len(value))
	}
	return nil
}
