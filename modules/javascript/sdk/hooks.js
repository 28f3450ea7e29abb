// Module hooks for `node --test`: the module's `cfhost:callflow/<interface>@<version>` imports
// resolve to the scripted host of `testing.js`, so its code runs natively, as in the component.

const TESTING = new URL('./testing.js', import.meta.url).href;

// What each interface of `cfhost:callflow@0.3` gives a module, by its JavaScript name.
const INTERFACES = {
  types: [],
  call: [],
  node: ['childKeys'],
  account: ['settings'],
  'call-control': ['answer', 'bridge', 'recordVoicemail', 'hangup'],
  directory: ['lookupUsers'],
  notify: ['publish'],
  callbacks: ['registerTermination'],
  log: ['log'],
};

const PREFIX = 'cfhost:callflow/';

export async function resolve(specifier, context, next) {
  if (!specifier.startsWith(PREFIX)) {
    return next(specifier, context);
  }
  const [name, version] = specifier.slice(PREFIX.length).split('@');
  if (!(name in INTERFACES) || !/^0\.3(\.\d+)?$/.test(version ?? '')) {
    throw new Error(`${specifier}: not an interface of cfhost:callflow@0.3`);
  }
  return { url: `cfhost-test:${name}`, shortCircuit: true };
}

export async function load(url, context, next) {
  if (!url.startsWith('cfhost-test:')) {
    return next(url, context);
  }
  const name = url.slice('cfhost-test:'.length);
  const exports = INTERFACES[name]
    .map((f) => `export const ${f} = (...args) => host(${JSON.stringify(name)}).${f}(...args);`)
    .join('\n');
  return {
    format: 'module',
    source: `import { host } from ${JSON.stringify(TESTING)};\n${exports}\n`,
    shortCircuit: true,
  };
}
