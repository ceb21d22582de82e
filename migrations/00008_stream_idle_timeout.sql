-- +goose Up

-- A model's bound on the silence between a stream's events once its first token came
-- (0: the gateway's default, --stream-idle-timeout).
alter table models add column stream_idle_timeout_ms bigint not null default 0;
alter table models add constraint models_stream_idle_ck check (stream_idle_timeout_ms >= 0);
comment on column models.stream_idle_timeout_ms is 'Longest silence between stream events after the first token, in ms; 0 = the gateway''s default.';

-- +goose Down
alter table models drop constraint models_stream_idle_ck;
alter table models drop column stream_idle_timeout_ms;
