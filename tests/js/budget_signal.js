// The throttle signal through the SDK: node budget_signal.js '{"sdk", "apiKey", "baseUrl", "reports": [[agentId, tokens, team], ...]}'
// Prints {"before", "budgets": [budget(agentId) after each report], "crossed": [[agentId, threshold, percent_used], ...]}.
'use strict';
const plan = JSON.parse(process.argv[2]);
const sophra = require(plan.sdk);
const crossed = [];
sophra.init({
  apiKey: plan.apiKey, baseUrl: plan.baseUrl,
  onBudget: (agentId, threshold, budget) => {
    crossed.push([agentId, threshold, budget.percent_used]);
    if (threshold === 100) throw new Error('a user function that throws does not fail the report');
  }
});
(async () => {
  const before = sophra.budget(plan.reports[0][0]);
  const budgets = [];
  for (const [agentId, tokens, team] of plan.reports) {
    await sophra.reportVitals({ agentId, metrics: { tokenConsumption: tokens }, metadata: { team } });
    budgets.push(sophra.budget(agentId));
  }
  process.stdout.write(JSON.stringify({ before, budgets, crossed }) + '\n');
})().catch((err) => { process.stderr.write(String(err.stack || err)); process.exit(1); });
