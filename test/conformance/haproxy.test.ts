import { defineConformanceSuite } from './suite.js';

defineConformanceSuite('haproxy');
