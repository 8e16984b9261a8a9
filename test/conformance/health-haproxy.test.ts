import { defineHealthSuite } from './health-suite.js';

defineHealthSuite('haproxy');
