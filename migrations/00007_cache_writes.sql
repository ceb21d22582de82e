-- +goose Up

-- Prompt-cache writes (Anthropic's cache_creation_input_tokens), priced above the input
-- price: carried on usage events so that spend can be reconciled with the provider's
-- invoice. Both are part of prompt_tokens; the 1-hour writes are part of
-- cache_write_tokens.
alter table usage_events add column cache_write_tokens bigint not null default 0;
alter table usage_events add column cache_write_hour_tokens bigint not null default 0;
comment on column usage_events.cache_write_tokens is 'Prompt tokens written to the provider''s prompt cache (part of prompt_tokens).';
comment on column usage_events.cache_write_hour_tokens is 'Of cache_write_tokens, those kept for an hour (priced at twice the input price).';

-- +goose Down
alter table usage_events drop column cache_write_hour_tokens;
alter table usage_events drop column cache_write_tokens;
