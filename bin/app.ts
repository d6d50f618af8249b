#!/usr/bin/env node
/**
 * The CDK app: one Spillway stack, configured from CDK context (cdk.json, `-c name=value`),
 * checked with the cdk-nag AwsSolutions pack. Synthesis needs no AWS credentials in either shape.
 */
import { App } from 'aws-cdk-lib';
import { addSpillway } from '../lib/app.js';

addSpillway(new App());
