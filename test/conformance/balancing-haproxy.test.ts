import { defineBalancingSuite } from './balancing-suite.js';

defineBalancingSuite('haproxy');
