// A stand-in for the parts of the Jeeves SDK (@karmaniverous/jeeves, not on the npm
// registry) that @karmaniverous/jeeves-runner-openclaw 0.8.1 and
// @karmaniverous/jeeves-runner-core 0.2.1 import. Written for the tests from the SDK's
// documented behaviour; nothing else of the SDK is here.
//
// What matters for the tests behaves as the SDK 0.5.x does:
// - fetchJson throws `HTTP <status>: <body>` on a non-2xx answer, else returns the JSON;
// - ok(data) is `{content: [{type: 'text', text: JSON.stringify(data, null, 2)}]}`;
//   a failure is `{content: [{type: 'text', text: 'Error: <message>'}], isError: true}`;
// - createPluginToolset's status, config and config_apply tools call
//   http://127.0.0.1:<RUNNER_PORT> whatever apiUrl the plugin was given (status with a
//   5 s timeout, config_apply posting `{patch: config}`).
// One liberty: RUNNER_PORT (1937 in the SDK) can be moved with JEEVES_STANDIN_RUNNER_PORT,
// because the tests' server listens on a free port, not on 1937.

export const RUNNER_PORT = Number(process.env.JEEVES_STANDIN_RUNNER_PORT || 1937);
export const DEFAULT_BIND_ADDRESS = '0.0.0.0';
export const SECTION_IDS = { Runner: 'Runner' };
export const WORKSPACE_CONFIG_DEFAULTS = { core: { gatewayUrl: 'http://127.0.0.1:18789' } };

export async function fetchJson(url, init) {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  return res.json();
}

export const ok = (data) => ({ content: [{ type: 'text', text: JSON.stringify(data, null, 2) }] });

const fail = (error) => ({
  content: [{ type: 'text', text: `Error: ${error instanceof Error ? error.message : String(error)}` }],
  isError: true,
});

export function connectionFail(error, baseUrl, pluginId) {
  const code = error?.cause?.code;
  if (['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT'].includes(code)) {
    return fail(`Service not reachable at ${baseUrl}. Set plugins.entries.${pluginId}.config.apiUrl.`);
  }
  return fail(error);
}

const pluginConfig = (api, pluginId, key) => api.config?.plugins?.entries?.[pluginId]?.config?.[key];

export function resolvePluginSetting(api, pluginId, key, envVar, fallback) {
  const configured = pluginConfig(api, pluginId, key);
  if (typeof configured === 'string') return configured;
  return process.env[envVar] || fallback;
}

export function resolveOptionalPluginSetting(api, pluginId, key, envVar) {
  const configured = pluginConfig(api, pluginId, key);
  if (typeof configured === 'string') return configured;
  return process.env[envVar] || undefined;
}

export const resolveWorkspacePath = (api) => api.config?.agents?.defaults?.workspace || process.cwd();
export const getPackageVersion = () => '0.0.0-standin';
export const init = () => {};
export const loadWorkspaceConfig = () => undefined;
export const createAsyncContentCache = ({ placeholder }) => () => placeholder;
export const createComponentWriter = () => ({ start() {}, stop() {} });

export function createPluginToolset(descriptor) {
  const { name, defaultPort } = descriptor;
  const baseUrl = `http://127.0.0.1:${defaultPort}`;
  const pluginId = `jeeves-${name}-openclaw`;
  const call = async (path, init) => {
    try {
      return ok(await fetchJson(`${baseUrl}${path}`, init));
    } catch (error) {
      return connectionFail(error, baseUrl, pluginId);
    }
  };
  return [
    {
      name: `${name}_status`,
      parameters: { type: 'object', properties: {} },
      execute: () => call('/status', { signal: AbortSignal.timeout(5000) }),
    },
    {
      name: `${name}_config`,
      parameters: { type: 'object', properties: { path: { type: 'string' } } },
      execute: (_id, params) =>
        call(`/config${params.path ? `?path=${encodeURIComponent(params.path)}` : ''}`),
    },
    {
      name: `${name}_config_apply`,
      parameters: { type: 'object', properties: { config: { type: 'object' } }, required: ['config'] },
      execute: (_id, params) =>
        params.config
          ? call('/config/apply', {
              method: 'POST',
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ patch: params.config }),
            })
          : Promise.resolve(fail('Missing required parameter: config')),
    },
    {
      name: `${name}_service`,
      parameters: { type: 'object', properties: { action: { type: 'string' } } },
      execute: async () => fail('service management is not part of this stand-in'),
    },
  ];
}
