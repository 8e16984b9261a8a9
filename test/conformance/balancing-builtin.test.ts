import { defineBalancingSuite } from './balancing-suite.js';

defineBalancingSuite('builtin');
