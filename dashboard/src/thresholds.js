// The health thresholds, from the api (GET /api/health-thresholds, whose one home is
// pipeline/health.py), fetched once per page load.
import { api } from './api.js';

let cached = null;
export function thresholds() {
  if (!cached) cached = api('/api/health-thresholds').catch((err) => { cached = null; throw err; });
  return cached;
}
