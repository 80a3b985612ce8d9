-- The agent registry, derived from vitals so it can't disagree with them: an agent exists
-- from its first report. agent_latest keeps each agent's newest snapshot, agent_names its
-- newest non-null display name (a report without agentName keeps the old name). Both
-- replace by record id, so a vitals row delivered twice changes nothing.
CREATE TABLE IF NOT EXISTS agent_latest
(
    tenant              LowCardinality(String),
    agent_id            String,
    id                  UInt64,
    token_consumption   UInt64,
    hallucination_rate  Float64,
    loop_frequency      UInt64,
    directive_conflicts UInt64,
    overall_health      LowCardinality(String),
    recorded_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(id)
ORDER BY (tenant, agent_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_latest_mv TO agent_latest AS
SELECT tenant, agent_id, id, token_consumption, hallucination_rate, loop_frequency,
       directive_conflicts, overall_health, recorded_at
FROM agent_vitals;

CREATE TABLE IF NOT EXISTS agent_names
(
    tenant      LowCardinality(String),
    agent_id    String,
    id          UInt64,
    name        String
)
ENGINE = ReplacingMergeTree(id)
ORDER BY (tenant, agent_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_names_mv TO agent_names AS
SELECT tenant, agent_id, id, assumeNotNull(agent_name) AS name
FROM agent_vitals
WHERE agent_name IS NOT NULL;
