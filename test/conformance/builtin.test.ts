import { defineConformanceSuite } from './suite.js';

defineConformanceSuite('builtin');
