/**
 * Debian's Chromium for the dashboard's browser tests, installed with apt when running as root
 * and missing (as the suite does for HAProxy and wrk), driven by playwright-core. No browser is
 * downloaded: playwright-core ships none.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

const run = promisify(execFile);
export const CHROMIUM = '/usr/bin/chromium';

async function aptInstall(): Promise<void> {
  const apt = (...args: string[]) => run('apt-get', args, { timeout: 900_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    await apt('install', '-y', '--no-install-recommends', 'chromium');
  } catch {
    await apt('update'); // a fresh machine may not know the package yet
    await apt('install', '-y', '--no-install-recommends', 'chromium');
  }
}

export async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`the dashboard tests need Debian's Chromium at ${CHROMIUM}; install it: sudo apt-get install -y chromium`);
  }
  await aptInstall();
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get install chromium did not provide ${CHROMIUM}`);
}

export async function launchChromium(): Promise<Browser> {
  await ensureChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
