#!/usr/bin/env node
import { once } from 'node:events';
import { runClient } from './client/commands.js';
import { COMMANDS_SUMMARY } from './client/help.js';
import { createLogger } from './log.js';
import { loadSettings, SettingsError, USAGE } from './settings/settings.js';

/** Resolves with the first of SIGTERM / SIGINT. */
function termination(): Promise<string> {
  return Promise.race([once(process, 'SIGTERM').then(() => 'SIGTERM'), once(process, 'SIGINT').then(() => 'SIGINT')]);
}

/** Runs until stopped by a signal; the process then ends on its own, with the code returned. */
async function runListener(): Promise<number> {
  // Loaded here rather than at the top so the client commands start without them (0.2 s instead of 0.6 s).
  const { listenerSettings, ListenerSettingsError, SwarmListener } = await import('./sources/listener/listener.js');
  let settings;
  try {
    settings = listenerSettings(process.env);
  } catch (error) {
    if (!(error instanceof ListenerSettingsError)) throw error;
    process.stderr.write(`flow-proxy listener: ${error.message}\n`);
    return 2;
  }
  const log = createLogger(process.env.LOG_LEVEL ?? 'info');
  const listener = new SwarmListener(settings, log.child({ listener: true }));
  const port = await listener.start();
  log.info({ port, create: settings.createUrls, remove: settings.removeUrls }, 'swarm listener started');
  await termination();
  await listener.stop();
  return 0;
}

async function runProxy(): Promise<number> {
  let settings;
  try {
    settings = loadSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    process.stderr.write(`flow-proxy: ${error.message}\n`);
    return 2;
  }
  if (settings === 'help') {
    process.stdout.write(`${USAGE}\n\n${COMMANDS_SUMMARY}\n`);
    return 0;
  }
  const { startFlowProxy } = await import('./app.js');
  const log = createLogger(settings.logLevel);
  let proxy;
  try {
    proxy = await startFlowProxy(settings, log);
  } catch (error) {
    process.stderr.write(`flow-proxy: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  const signal = await termination();
  log.info({ signal }, 'stopping: finishing in-flight requests');
  try {
    await proxy.stop();
    return 0;
  } catch (error) {
    log.error({ err: error }, 'error while stopping');
    return 1;
  }
}

/** `flow-proxy [options]` runs the proxy, `flow-proxy listener` the Swarm Listener; any other first word is a client command. */
function run(args: readonly string[]): Promise<number> {
  const [first] = args;
  if (first === 'listener') return runListener();
  if (first === undefined || first.startsWith('-')) return runProxy();
  return runClient(args, process.env);
}

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
