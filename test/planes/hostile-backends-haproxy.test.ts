import { defineHostileBackendSuite } from './hostile-backends.js';

defineHostileBackendSuite('haproxy');
