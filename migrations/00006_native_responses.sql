-- +goose Up

-- An OpenAI-compatible provider that serves the Responses API itself (OpenAI does):
-- every Responses request to it goes to its own /responses, not only those the chat
-- form cannot carry, so reasoning items, stored state and hosted tools keep working.
alter table providers add column native_responses boolean not null default false;
comment on column providers.native_responses is 'OpenAI-compatible only: send every Responses request to the provider''s own /responses instead of translating it through chat completions.';

-- +goose Down
alter table providers drop column native_responses;
