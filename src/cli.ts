#!/usr/bin/env node
import { startFlowProxy } from './app.js';
import { createLogger } from './log.js';
import { loadSettings, SettingsError, USAGE } from './settings/settings.js';
import { listenerSettings, ListenerSettingsError, SwarmListener } from './sources/listener/listener.js';

async function runListener(): Promise<void> {
  let settings;
  try {
    settings = listenerSettings(process.env);
  } catch (error) {
    if (error instanceof ListenerSettingsError) {
      process.stderr.write(`flow-proxy listener: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(process.env.LOG_LEVEL ?? 'info');
  const listener = new SwarmListener(settings, log.child({ listener: true }));
  const port = await listener.start();
  log.info({ port, create: settings.createUrls, remove: settings.removeUrls }, 'swarm listener started');
  const stop = () => void listener.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'listener') {
    await runListener();
    return;
  }
  let settings;
  try {
    settings = loadSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`flow-proxy: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (settings === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = createLogger(settings.logLevel);
  let proxy;
  try {
    proxy = await startFlowProxy(settings, log);
  } catch (error) {
    process.stderr.write(`flow-proxy: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing in-flight requests');
    proxy.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
