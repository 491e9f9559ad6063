// Load the real jeeves-runner-openclaw plugin with a fake OpenClaw `api` that captures
// registerTool, then call tools: stdin is a JSON list of {tool, params}; stdout is a JSON
// list of {tool, isError, text}, in order.
// Usage: node call_tools.mjs <plugin entry (dist/index.js)> <apiUrl> <workspace dir>
import { pathToFileURL } from 'node:url';

const [entry, apiUrl, workspace] = process.argv.slice(2);
const tools = new Map();
const api = {
  config: {
    agents: { defaults: { workspace } },
    plugins: { entries: { 'jeeves-runner-openclaw': { config: { apiUrl, configRoot: workspace } } } },
  },
  resolvePath: (p) => p,
  registerTool: (tool) => tools.set(tool.name, tool),
};
const { default: register } = await import(pathToFileURL(entry).href);
register(api);

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const { tool, params } of JSON.parse(input)) {
  const registered = tools.get(tool);
  if (!registered) throw new Error(`the plugin registered no tool ${tool}: ${[...tools.keys()]}`);
  const answer = await registered.execute('call', params ?? {});
  results.push({ tool, isError: Boolean(answer.isError), text: answer.content[0].text });
}
process.stdout.write(JSON.stringify({ registered: [...tools.keys()].sort(), results }));
