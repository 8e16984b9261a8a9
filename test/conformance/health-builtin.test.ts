import { defineHealthSuite } from './health-suite.js';

defineHealthSuite('builtin');
