// The agent API of reference 003 (under /api): report vitals and events, read agents,
// vitals history, events and ARI.
using System;
using System.Threading;
using System.Threading.Tasks;

namespace Sophonz
{
    public sealed class Agents : Resource
    {
        internal Agents(SophonzClient client) : base(client) { }

        private static string Agent(string agentId) { return "/api/agents/" + SophonzClient.Segment(agentId); }

        /// <summary>POST /api/vitals, awaited: {"success", "health", "vital"}. The payload is
        /// sent as given, with the reference's names: new { agentId = "my-agent", agentName,
        /// metrics = new { tokenConsumption = 2400, hallucinationRate = 0.02, loopCount = 3,
        /// conflictCount = 0, ...custom }, metadata }. Throws SophonzException (429 after the
        /// retry budget, 400 naming the field, ...).</summary>
        public Task<JsonObject> ReportVitalsAsync(object vitals, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("POST", "/api/vitals", null, vitals ?? new JsonObject(), cancellationToken);
        }

        /// <summary>POST /api/events, awaited: {"success", "event"}. Payload: new { agentId,
        /// type = "tool_error", details, metadata }.</summary>
        public Task<JsonObject> ReportEventAsync(object agentEvent, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("POST", "/api/events", null, agentEvent ?? new JsonObject(), cancellationToken);
        }

        /// <summary>Fire and forget POST /api/vitals: queued and sent in the background
        /// (client.Reports). Never throws, never waits; false when dropped or unserializable.</summary>
        public bool ReportVitals(object vitals) { return Client.Reports.Enqueue("/api/vitals", vitals); }

        /// <summary>Fire and forget POST /api/events (see ReportVitals).</summary>
        public bool ReportEvent(object agentEvent) { return Client.Reports.Enqueue("/api/events", agentEvent); }

        /// <summary>GET /api/agents: {"success", "agents": [...]} with each agent's latest vitals.</summary>
        public Task<JsonObject> ListAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", "/api/agents", null, null, cancellationToken);
        }

        /// <summary>One agent's entry of GET /api/agents, or null when the account has no such
        /// agent (reference 003 has no single-agent endpoint, so this reads the list).</summary>
        public async Task<JsonObject> GetAsync(string agentId, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (agentId == null) throw new ArgumentNullException("agentId");
            var list = await ListAsync(cancellationToken).ConfigureAwait(false);
            foreach (var item in list.GetArray("agents"))
            {
                var agent = (JsonObject)item;
                if (agent.GetString("agent_id") == agentId) return agent;
            }
            return null;
        }

        /// <summary>GET /api/agents/{id}/vitals?limit: {"success", "vitals": [...]}, newest
        /// first (default 50, at most 500). 404 for an agent that never reported.</summary>
        public Task<JsonObject> VitalsAsync(string agentId, int? limit = null,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", Agent(agentId) + "/vitals", SophonzClient.Query("limit", limit), null,
                                      cancellationToken);
        }

        /// <summary>GET /api/agents/{id}/events?limit&amp;start&amp;end: {"success", "events":
        /// [...]}, newest first, optionally only those in [start, end).</summary>
        public Task<JsonObject> EventsAsync(string agentId, int? limit = null, DateTimeOffset? start = null,
                                            DateTimeOffset? end = null,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", Agent(agentId) + "/events",
                                      SophonzClient.Query("limit", limit, "start", start, "end", end), null, cancellationToken);
        }

        /// <summary>GET /api/agents/{id}/ari: {"success", "agent_id", "stats", "checkups",
        /// "interventions"}.</summary>
        public Task<JsonObject> AriAsync(string agentId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", Agent(agentId) + "/ari", null, null, cancellationToken);
        }
    }
}
